/**
 * Parts that need the full end-to-end stack (the KIE emulator, the callback function, the dev
 * workers). Each becomes its own module beside this one when it is measured; until then the
 * table says so instead of showing a number.
 */
import type { Part } from "./types.ts";

const pending = [
  { part: "2 dispatch burst", subject: "createTask rate ÷ emulator limit, 429s, time to last send", needs: "the emulator and the pg_net worker" },
  { part: "3 engine overhead", subject: "commit → completed with images, p50/p95/p99", needs: "the emulator, the callback function and the tick driver" },
  { part: "5 callback path", subject: "callbacks per second vs an empty function", needs: "the callback function and the Storage stand-in" },
  { part: "6 memory", subject: "peak RSS of the function and the dev workers", needs: "parts 2 and 5" },
];

export const notMeasured: Part = {
  id: "not-measured",
  title: "parts waiting for the end-to-end stack",
  run() {
    return Promise.resolve({
      rows: pending.map((p) => ({ part: p.part, case: "", subject: p.subject, note: `needs ${p.needs}` })),
      sections: [],
      summary: [],
    });
  },
};
