/**
 * Ctrl-C for the offline commands: the first SIGINT asks the run to stop after the trajectories in
 * flight (what finished is written, and a rerun resumes); a second one quits at once (exit 130).
 */
export interface StopOnInterrupt {
  readonly stop: { requested: boolean };
  /** Removes the handler; call it when the run ends. */
  release(): void;
}

export function stopOnInterrupt(say: (line: string) => void): StopOnInterrupt {
  const stop = { requested: false };
  const onSignal = () => {
    if (stop.requested) process.exit(130);
    stop.requested = true;
    say('stopping after the trajectories in flight (Ctrl-C again to quit now); rerun to resume');
  };
  process.on('SIGINT', onSignal);
  return { stop, release: () => process.off('SIGINT', onSignal) };
}
