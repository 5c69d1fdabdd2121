/**
 * Every `error.code` the service answers, with its HTTP status and what it means: the list the
 * README's "stable codes" table is generated from (`npm run readme:codes`). A test scans src/ for
 * the codes the code can throw and fails when one is missing here, has another status, or when
 * the README's table differs from `codesTable()`.
 */
export interface ErrorCode {
  code: string;
  status: number;
  /** Shown after the code in the README, in parentheses; optional. */
  note?: string;
}

export const ERROR_CODES: readonly ErrorCode[] = [
  { code: 'malformed_json', status: 400, note: 'with the position where it broke; also `NaN`/`Infinity` literals' },
  { code: 'invalid_request', status: 400, note: 'wrong types, missing fields, `1e999`' },
  { code: 'unknown_field', status: 400 },
  { code: 'conflicting_fields', status: 400 },
  { code: 'missing_step', status: 400 },
  { code: 'missing_trajectory', status: 400 },
  { code: 'missing_format', status: 400 },
  { code: 'missing_data', status: 400 },
  { code: 'invalid_format', status: 400 },
  { code: 'invalid_prompt', status: 400 },
  { code: 'invalid_step', status: 400 },
  { code: 'invalid_ids', status: 400 },
  { code: 'invalid_message', status: 400 },
  { code: 'invalid_segment', status: 400 },
  { code: 'invalid_render', status: 400 },
  { code: 'invalid_action_roles', status: 400 },
  { code: 'invalid_timeout', status: 400 },
  { code: 'invalid_tokenization', status: 400 },
  { code: 'invalid_label', status: 400 },
  { code: 'invalid_utf8', status: 400 },
  { code: 'invalid_content_length', status: 400 },
  { code: 'invalid_session_id', status: 400 },
  { code: 'too_deeply_nested', status: 400, note: '> 128 levels' },
  { code: 'missing_prompts', status: 400, note: '`/get_reward` without prompts' },
  { code: 'length_mismatch', status: 400, note: '`/get_reward`: query and prompts of different lengths' },
  { code: 'unsupported_schema_version', status: 400, note: '`/v1/weave/score`: not 1 or 2' },
  { code: 'unsupported_scoring_target_type', status: 400, note: '`/v1/weave/score`: a target other than ("call", 1), ("agent_turn", 1)' },
  { code: 'invalid_scorer_config', status: 400, note: '`/v1/weave/score`: scorer.config' },
  { code: 'scoring_only', status: 400, note: '`/v1/completions` asked to generate' },
  { code: 'invalid_model', status: 400, note: '`/v1/completions`: not `<scorer>:policy` or `<scorer>:reference`' },
  { code: 'bad_request', status: 400, note: "any other 4xx of fastify's own, with its status" },
  { code: 'unauthorized', status: 401, note: 'with `WWW-Authenticate: Bearer`, when an API key is configured' },
  { code: 'not_found', status: 404, note: 'no such route or viewer file' },
  { code: 'model_not_found', status: 404 },
  { code: 'body_too_large', status: 413 },
  { code: 'too_many_items', status: 413, note: 'any list over its limit' },
  { code: 'batch_too_large', status: 413, note: 'more sequences than `--max-queue` could ever hold: split the request' },
  { code: 'unsupported_media_type', status: 415, note: 'a body that is not `application/json`' },
  { code: 'empty_step', status: 422 },
  { code: 'empty_trajectory', status: 422 },
  { code: 'empty_candidate', status: 422 },
  { code: 'no_candidates', status: 422 },
  { code: 'no_steps', status: 422, note: 'names the roles seen and the action roles looked for' },
  { code: 'no_context', status: 422 },
  { code: 'ids_out_of_vocabulary', status: 422 },
  { code: 'step_too_long', status: 422 },
  { code: 'input_too_long', status: 422, note: 'with `truncate: false`' },
  { code: 'invalid_beta', status: 422, note: 'β must be in (0, 1e6]' },
  { code: 'tokenization_unaligned', status: 422 },
  { code: 'invalid_trajectory_data', status: 422, note: 'a `format` + `data` record the adapter cannot read' },
  { code: 'unsupported_content', status: 422 },
  { code: 'no_chat_template', status: 422 },
  { code: 'chat_template_error', status: 422 },
  { code: 'chat_template_not_prefix', status: 422 },
  { code: 'prompt_not_prefix', status: 422, note: '`/get_reward`: a prompt that does not start its query' },
  { code: 'no_output', status: 422, note: '`/v1/weave/score`: a call without output' },
  { code: 'output_truncated', status: 422, note: '`/v1/weave/score`: nothing of the output fits' },
  { code: 'not_scored', status: 422, note: 'offline `sweep` output lines only: the policy pass has no log-probs for that trajectory' },
  { code: 'empty_prompt', status: 422, note: '`/v1/completions`' },
  { code: 'overloaded', status: 429, note: 'with `Retry-After`' },
  { code: 'client_closed_request', status: 499, note: 'the client went away; logged, never seen by it' },
  { code: 'internal_error', status: 500, note: 'a bug; see the server log' },
  { code: 'inference_failed', status: 500 },
  { code: 'model_output_invalid', status: 500, note: 'a forward pass produced NaN/Infinity; the server keeps serving' },
  { code: 'not_ready', status: 503 },
  { code: 'shutting_down', status: 503 },
  { code: 'engine_restarting', status: 503, note: 'a worker died and is restarting; with `Retry-After`' },
  { code: 'deadline_exceeded', status: 504, note: '`timeout_ms` in the body or an `x-timeout-ms` header, answered at the deadline even while queued' },
];

const STATUS_LABELS: Record<number, string> = { 400: '400 malformed', 422: '422 unusable input' };

/** The README's "stable codes" table, one row per status. */
export function codesTable(codes: readonly ErrorCode[] = ERROR_CODES): string {
  const statuses = [...new Set(codes.map((c) => c.status))].sort((a, b) => a - b);
  const rows = statuses.map((status) => {
    const cells = codes.filter((c) => c.status === status).map((c) => `\`${c.code}\`${c.note ? ` (${c.note})` : ''}`);
    return `| ${STATUS_LABELS[status] ?? String(status)} | ${cells.join(', ')} |`;
  });
  return ['| status | codes |', '|---|---|', ...rows].join('\n');
}
