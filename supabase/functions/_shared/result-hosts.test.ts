import assert from "node:assert/strict";
import { resultUrlProblem } from "./result-hosts.ts";

// The same cases as callback_result_hosts.test.sql: the TypeScript twin must agree with SQL.
const allowed = ["files.kie.test", "http://127.0.0.1:18100"];
const cases: [string, boolean][] = [
  ["https://files.kie.test/r/a.png", true],
  ["HTTPS://FILES.KIE.TEST:443/r/a.png?sig=1", true],
  ["http://127.0.0.1:18100/files/a.png", true],
  ["http://127.0.0.1:18101/files/a.png", false],
  ["http://files.kie.test/r/a.png", false],
  ["https://files.kie.test:8443/r/a.png", false],
  ["https://evil.test/r/a.png", false],
  ["https://files.kie.test.evil.test/a.png", false],
  ["https://169.254.169.254/latest/meta-data", false],
  ["https://files.kie.test@127.0.0.1/a.png", false],
  ["https://files.kie.test\\@evil.test/a.png", false],
  ["https://[::1]/a.png", false],
  ["file:///etc/passwd", false],
];
for (const [url, ok] of cases) {
  Deno.test(`result host rule: ${url} ${ok ? "accepted" : "refused"}`, () => {
    assert.equal(resultUrlProblem(url, allowed) === null, ok, String(resultUrlProblem(url, allowed)));
  });
}
Deno.test("result host rule: an empty list accepts nothing", () => {
  assert.notEqual(resultUrlProblem("https://files.kie.test/r/a.png", []), null);
});
