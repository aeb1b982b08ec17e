/**
 * Per-key request limits as a sliding log: at most `limit` admitted requests in any `windowMs`.
 * Refused requests are not logged, so a client that backs off a full window always gets through.
 */
import type { Rate } from "./options.ts";

export class SlidingWindow {
  private readonly log = new Map<string, number[]>();

  constructor(public rate: Rate) {}

  /** true when the request is admitted (and counted), false when it must get a 429. */
  admit(key: string, now = Date.now()): boolean {
    const since = now - this.rate.windowMs;
    const times = (this.log.get(key) ?? []).filter((t) => t > since);
    const admitted = times.length < this.rate.limit;
    if (admitted) times.push(now);
    this.log.set(key, times);
    return admitted;
  }

  reset(): void {
    this.log.clear();
  }
}
