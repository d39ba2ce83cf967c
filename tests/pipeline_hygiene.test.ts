import { strict as assert } from "node:assert";
import { type HygieneOptions, RejectionPolicy, rejectionQuality } from "../src/stages/hygiene.ts";

const NO_GUARDS: HygieneOptions = {
  flagsToReject: 1,
  maxRejectedFraction: 1,
  rateWindow: 100,
  readmitEverySteps: 0,
  quarantineSize: 0,
};

const batchOf = (...ids: string[]) => ids.map((imageId) => ({ imageId, item: imageId }));

Deno.test("hygiene: without guards every flagged image is rejected at once (pre-hygiene behaviour)", () => {
  const policy = new RejectionPolicy<string>(NO_GUARDS);
  assert.deepEqual(policy.review(batchOf("a", "b", "c"), [2, 0]), ["a", "c"]);
  assert.deepEqual(policy.stats, { rejected: 2, refusedByCap: 0, readmitted: 0, quarantined: 0 });
  assert.deepEqual(policy.readmit(), []);
});

Deno.test("hygiene: an image is rejected only on its flagsToReject-th flag", () => {
  const policy = new RejectionPolicy<string>({ ...NO_GUARDS, flagsToReject: 2 });
  assert.deepEqual(policy.review(batchOf("a", "b"), [0]), []);
  assert.deepEqual(policy.review(batchOf("b", "a"), [0]), []); // b's first flag
  assert.deepEqual(policy.review(batchOf("a", "b"), [0, 1]), ["a", "b"]);
});

Deno.test("hygiene: the rejection-rate cap refuses rejections beyond the share (hand trace)", () => {
  const policy = new RejectionPolicy<string>({
    ...NO_GUARDS,
    maxRejectedFraction: 0.25,
    rateWindow: 4,
  });
  // a: 1/1, b: 1/2, c: 1/3 exceed 0.25 → refused; d: 1/4 = 0.25 → rejected.
  assert.deepEqual(policy.review(batchOf("a", "b", "c", "d"), [0, 1, 2, 3]), ["d"]);
  // e: the last 3 decisions [no, no, yes] + e → 2/4 > 0.25 → refused.
  assert.deepEqual(policy.review(batchOf("e"), [0]), []);
  assert.deepEqual(policy.stats, { rejected: 1, refusedByCap: 4, readmitted: 0, quarantined: 0 });
  assert.equal(policy.rejectedFraction, 0.25); // window [no, no, yes, no]
});

Deno.test("hygiene: quarantined images come back, oldest first, every readmitEverySteps", () => {
  const policy = new RejectionPolicy<string>({
    ...NO_GUARDS,
    readmitEverySteps: 2,
    quarantineSize: 2,
  });
  policy.review(batchOf("a", "b", "c"), [0, 1, 2]); // step 1: quarantine keeps b, c
  assert.deepEqual(policy.readmit(), []); // step 1 is not a multiple of 2
  policy.review(batchOf("d"), []); // step 2
  assert.deepEqual(policy.readmit(), [{ imageId: "b", item: "b" }]);
  assert.deepEqual(policy.stats, { rejected: 3, refusedByCap: 0, readmitted: 1, quarantined: 1 });
});

Deno.test("hygiene: anomalous verdicts of the published model reject only when switched on, under the cap", () => {
  const off = new RejectionPolicy<string>(NO_GUARDS);
  assert.equal(off.rejectScored({ imageId: "a", item: "a" }), false);
  assert.deepEqual(off.stats, { rejected: 0, refusedByCap: 0, readmitted: 0, quarantined: 0 });

  const policy = new RejectionPolicy<string>({
    ...NO_GUARDS,
    rejectScoredAnomalous: true,
    maxRejectedFraction: 0.5,
    rateWindow: 4,
    quarantineSize: 4,
  });
  policy.review(batchOf("a", "b"), []); // two kept decisions
  assert.equal(policy.rejectScored({ imageId: "c", item: "c" }), true); // 1/3 ≤ 0.5
  assert.equal(policy.rejectScored({ imageId: "d", item: "d" }), true); // 2/4 ≤ 0.5
  assert.equal(policy.rejectScored({ imageId: "e", item: "e" }), false); // [b, c, d, e]: 3/4
  assert.deepEqual(policy.stats, { rejected: 2, refusedByCap: 1, readmitted: 0, quarantined: 2 });
});

Deno.test("hygiene: with capPerDefectRate the cap follows the defect-rate estimate (hand trace)", () => {
  const policy = new RejectionPolicy<string>({
    ...NO_GUARDS,
    maxRejectedFraction: 0.5,
    rateWindow: 4,
    capPerDefectRate: 2,
  });
  assert.equal(policy.cap, 0.5, "no estimate yet: maxRejectedFraction");
  // Estimate 0.1 → cap 0.2: a 1/1, b 1/2, c 1/3, d 1/4 all exceed it.
  assert.deepEqual(policy.review(batchOf("a", "b", "c", "d"), [0, 1, 2, 3], 0.1), []);
  assert.ok(Math.abs(policy.cap - 0.2) < 1e-12);
  // Estimate 0.2 → cap 0.4: window [b, c, d, e] → 1/4 ≤ 0.4.
  assert.deepEqual(policy.review(batchOf("e"), [0], 0.2), ["e"]);
  // Never above maxRejectedFraction.
  policy.review(batchOf("f"), [], 0.9);
  assert.equal(policy.cap, 0.5);
});

Deno.test("hygiene: bad options are refused", () => {
  assert.throws(() => new RejectionPolicy({ ...NO_GUARDS, flagsToReject: 0 }), /flagsToReject/);
  assert.throws(
    () => new RejectionPolicy({ ...NO_GUARDS, maxRejectedFraction: 1.5 }),
    /maxRejectedFraction/,
  );
  assert.throws(() => new RejectionPolicy({ ...NO_GUARDS, rateWindow: 0 }), /rateWindow/);
  assert.throws(
    () => new RejectionPolicy({ ...NO_GUARDS, capPerDefectRate: -1 }),
    /capPerDefectRate/,
  );
  assert.throws(
    () => new RejectionPolicy({ ...NO_GUARDS, readmitEverySteps: -1 }),
    /readmitEverySteps/,
  );
});

Deno.test("rejectionQuality: precision and recall against a manifest, each image once", () => {
  const anomalous = new Set(["x", "y", "z"]);
  const quality = rejectionQuality(
    ["a", "b", "x", "y", "x", "c"], // z never reached a batch
    ["x", "a", "x"],
    (id) => anomalous.has(id),
  );
  assert.deepEqual(quality, {
    rejected: 2,
    truePositives: 1,
    anomaliesSeen: 2,
    precision: 0.5,
    recall: 0.5,
  });
  assert.deepEqual(rejectionQuality(["a"], [], () => false), {
    rejected: 0,
    truePositives: 0,
    anomaliesSeen: 0,
    precision: null,
    recall: null,
  });
});
