// tests/interop/common.mjs: shared pieces of the sigstore-js interop checks.
//
// Environment (set by run.sh): FULCRUM_URL (the running server), ISSUER_URL (the dev issuer,
// configured in the server as an email issuer with ClientID "sigstore"), CT_MODE ("embedded":
// the server runs its embedded CT log; "off": --ct-log-url ""), TRUSTED_ROOT (embedded: the
// file `fulcrum trusted-root` printed for this server).

import { readFileSync } from 'node:fs';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';

export const FULCRUM_URL = mustEnv('FULCRUM_URL');
export const ISSUER_URL = mustEnv('ISSUER_URL');
export const CT_MODE = mustEnv('CT_MODE');
if (CT_MODE !== 'embedded' && CT_MODE !== 'off') {
  console.error(`CT_MODE must be "embedded" or "off", not "${CT_MODE}"`);
  process.exit(2);
}
export const EMBEDDED = CT_MODE === 'embedded';
export const TRUSTED_ROOT_PATH = EMBEDDED ? mustEnv('TRUSTED_ROOT') : null;

function mustEnv(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set (run through tests/interop/run.sh)`);
    process.exit(2);
  }
  return v;
}

let passed = 0;
let failed = 0;

export function check(cond, what, detail) {
  if (cond) {
    passed++;
  } else {
    failed++;
    console.error(`FAIL ${what}${detail === undefined ? '' : `: ${detail}`}`);
  }
  return !!cond;
}

// Runs one named async case; an exception counts as one failure.
export async function runCase(name, fn) {
  try {
    await fn();
  } catch (err) {
    check(false, `${name} threw`, err && err.stack ? err.stack : String(err));
    if (err && err.cause) console.error('  cause:', err.cause);
  }
}

export function report() {
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

// A token from the dev issuer (GET /token?<query>).
export async function devToken(params) {
  const q = new URLSearchParams(params).toString();
  const res = await fetch(`${ISSUER_URL}/token?${q}`);
  if (res.status !== 200) throw new Error(`dev issuer /token: ${res.status} ${await res.text()}`);
  return (await res.text()).trim();
}

// Polls GET /healthz until 200 or the deadline.
export async function waitHealthy(deadlineMs = 20000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(`${FULCRUM_URL}/healthz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`${FULCRUM_URL}/healthz not 200 after ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The CA chain Fulcrum publishes (GET /api/v2/trustBundle): PEM strings, issuing CA first.
export async function trustBundle() {
  const res = await fetch(`${FULCRUM_URL}/api/v2/trustBundle`);
  const body = await res.json();
  return body.chains[0].certificates;
}

// A sigstore TrustedRoot holding only Fulcrum's CA (no Rekor, no CT logs, no TSA).
export function trustedRoot(caPems) {
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [],
    ctlogs: [],
    timestampAuthorities: [],
    certificateAuthorities: [
      {
        subject: { organization: 'fulcrum', commonName: 'fulcrum interop' },
        uri: FULCRUM_URL,
        certChain: { certificates: caPems.map((pem) => ({ rawBytes: new NodeX509(pem).raw })) },
        validFor: { start: new Date(0) },
      },
    ],
  };
}

// The trusted_root.json `fulcrum trusted-root` printed (embedded mode), as JSON.
export function trustedRootJSON() {
  return JSON.parse(readFileSync(TRUSTED_ROOT_PATH, 'utf8'));
}

// What the verifier trusts: with the embedded log, the trusted root printed by `fulcrum
// trusted-root`, read by @sigstore/protobuf-specs' own TrustedRoot.fromJSON (so the field names
// are checked by the real parser), and at least one verified SCT is required; with CT off, the
// CA alone and no SCT required. `rootJSON` overrides the trusted root (negative cases).
export function trustFor(caPems, rootJSON) {
  if (EMBEDDED || rootJSON) {
    const root = TrustedRoot.fromJSON(rootJSON || trustedRootJSON());
    return { material: toTrustMaterial(root), ctlogThreshold: 1 };
  }
  return { material: toTrustMaterial(trustedRoot(caPems)), ctlogThreshold: 0 };
}

// Verifies a sigstore bundle with @sigstore/verify against Fulcrum's CA and an identity policy.
//
// There is no Rekor or TSA in this loop, so the bundle carries no timestamp. @sigstore/verify
// checks the certificate chain and validity at each verified timestamp; we hand it one observed
// time (now), shaped as a transparency-log timestamp, which is what a Rekor integrated time would
// be. The tlog threshold is 0 (no Rekor here). The SCT threshold is 1 with the embedded CT log
// (the certificate's SCT must verify against the trusted root's ctlogs) and 0 with CT off;
// `opts` may override it and the trusted root ({ctlogThreshold, rootJSON}).
export function verifyBundle(bundle, artifact, caPems, policy, opts = {}) {
  const entity = toSignedEntity(bundle, artifact);
  entity.timestamps.push({
    $case: 'transparency-log',
    tlogEntry: {
      logIndex: '0',
      logId: { keyId: Buffer.from('fulcrum-interop-observation') },
      kindVersion: { kind: 'hashedrekord', version: '0.0.1' },
      integratedTime: String(Math.floor(Date.now() / 1000)),
      inclusionPromise: { signedEntryTimestamp: Buffer.alloc(0) },
      canonicalizedBody: Buffer.alloc(0),
    },
  });
  const trust = trustFor(caPems, opts.rootJSON);
  const verifier = new Verifier(trust.material, {
    tlogThreshold: 0,
    ctlogThreshold: opts.ctlogThreshold ?? trust.ctlogThreshold,
    timestampThreshold: 1,
  });
  return verifier.verify(entity, policy);
}
