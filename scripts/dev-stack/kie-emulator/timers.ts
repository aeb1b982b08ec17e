/** Timers and in-flight work that `close()` must stop, so nothing fires after the emulator ends. */
export class Timers {
  private readonly handles = new Set<NodeJS.Timeout>();
  private readonly controller = new AbortController();

  /** Aborted on close: pass it to fetches. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  after(ms: number, fn: () => void): NodeJS.Timeout {
    const handle = setTimeout(() => {
      this.handles.delete(handle);
      if (!this.controller.signal.aborted) fn();
    }, ms);
    this.handles.add(handle);
    return handle;
  }

  cancel(handle: NodeJS.Timeout | null | undefined): void {
    if (!handle) return;
    clearTimeout(handle);
    this.handles.delete(handle);
  }

  /** Cancels pending timers but keeps the emulator running (admin reset). */
  cancelAll(): void {
    for (const handle of this.handles) clearTimeout(handle);
    this.handles.clear();
  }

  close(): void {
    this.cancelAll();
    this.controller.abort();
  }
}
