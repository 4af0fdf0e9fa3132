// tests/interop/ct.mjs: Certificate Transparency as sigstore-js sees it.
//
// Embedded mode (the server runs its embedded CT log): the trusted root printed by `fulcrum
// trusted-root` is read with @sigstore/protobuf-specs' TrustedRoot.fromJSON and handed to
// @sigstore/verify's toTrustMaterial; bundles must then carry a certificate whose embedded SCT
// verifies against the ctlogs entry (ctlogThreshold 1), and a wrong log key, a log not yet valid
// or no log at all must make verification fail. CT off: the answer is detached with an empty SCT
// and a verifier that requires SCTs refuses the certificate.

import { createHash, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { FulcioSigner, MessageSignatureBundleBuilder } from '@sigstore/sign';
import { X509Certificate } from '@sigstore/core';
import {
  EMBEDDED,
  FULCRUM_URL,
  ISSUER_URL,
  check,
  devToken,
  runCase,
  trustBundle,
  trustedRootJSON,
  verifyBundle,
} from './common.mjs';

function signer(token) {
  return new FulcioSigner({
    fulcioBaseURL: FULCRUM_URL,
    identityProvider: { getToken: async () => token },
    retry: 0,
    timeout: 10000,
  });
}

async function signedBundle(email) {
  const token = await devToken({ email });
  const artifact = Buffer.from(`ct interop for ${email}`);
  const builder = new MessageSignatureBundleBuilder({ signer: signer(token), witnesses: [] });
  return { bundle: await builder.create({ data: artifact }), artifact };
}

// The raw v2 answer to a key + proof request (what every client parses).
async function rawAnswer(email) {
  const token = await devToken({ email });
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const res = await fetch(`${FULCRUM_URL}/api/v2/signingCert`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      credentials: { oidcIdentityToken: token },
      publicKeyRequest: {
        publicKey: { algorithm: 'ECDSA', content: publicKey.export({ format: 'pem', type: 'spki' }) },
        proofOfPossession: cryptoSign('sha256', Buffer.from(email), privateKey).toString('base64'),
      },
    }),
  });
  return { status: res.status, body: await res.json() };
}

function der(pem) {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

// Verification must throw a VerificationError whose message contains `want`.
function expectRejected(what, fn, want) {
  let threw = null;
  try {
    fn();
  } catch (err) {
    threw = err;
  }
  check(threw && threw.name === 'VerificationError' && String(threw.message).includes(want),
    what, threw ? `${threw.name}: ${threw.message}` : 'verified');
}

async function embeddedCases(caPems) {
  const rootJSON = trustedRootJSON();

  await runCase('trusted root printed by fulcrum trusted-root', async () => {
    check(rootJSON.mediaType === 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      'mediaType', rootJSON.mediaType);
    const ca = rootJSON.certificateAuthorities?.[0];
    const chain = ca?.certChain?.certificates?.map((c) => Buffer.from(c.rawBytes, 'base64'));
    check(chain && chain.length === caPems.length &&
      chain.every((d, i) => d.equals(der(caPems[i]))),
    'certificateAuthorities[0].certChain = the trustBundle chain (DER)');
    check(ca?.uri === FULCRUM_URL, 'CA uri = the server URL', ca?.uri);
    const log = rootJSON.ctlogs?.[0];
    check(rootJSON.ctlogs?.length === 1, 'one ctlog', rootJSON.ctlogs?.length);
    check(log?.baseUrl === FULCRUM_URL, 'embedded log baseUrl = the server URL', log?.baseUrl);
    check(log?.hashAlgorithm === 'SHA2_256', 'hashAlgorithm SHA2_256', log?.hashAlgorithm);
    check(log?.publicKey?.keyDetails === 'PKIX_ECDSA_P256_SHA_256', 'keyDetails P-256',
      log?.publicKey?.keyDetails);
    const raw = Buffer.from(log?.publicKey?.rawBytes ?? '', 'base64');
    check(log?.logId?.keyId === createHash('sha256').update(raw).digest('base64'),
      'logId.keyId = base64(SHA-256(DER SPKI))', log?.logId?.keyId);
    const res = await fetch(`${FULCRUM_URL}/ct/v1/get-sth`);
    check(res.status === 200, 'the embedded log answers get-sth on the CA listener', res.status);
  });

  await runCase('v2 answer with an embedded SCT', async () => {
    const { status, body } = await rawAnswer('ct-raw@example.com');
    check(status === 200, 'status 200', status);
    check(Object.keys(body).join() === 'signedCertificateEmbeddedSct' &&
      Object.keys(body.signedCertificateEmbeddedSct).join() === 'chain',
    'answer is exactly {signedCertificateEmbeddedSct:{chain}}', JSON.stringify(body).slice(0, 200));
    const certs = body.signedCertificateEmbeddedSct?.chain?.certificates ?? [];
    check(certs.length === caPems.length + 1, 'chain = leaf + trust bundle', certs.length);
    const leaf = X509Certificate.parse(certs[0]);
    const scts = leaf.extSCT?.signedCertificateTimestamps ?? [];
    check(scts.length === 1, '@sigstore/core finds exactly one SCT', scts.length);
    const keyId = rootJSON.ctlogs[0].logId.keyId;
    check(scts[0] && scts[0].logID.toString('base64') === keyId,
      'the SCT names the trusted root\'s log', scts[0]?.logID.toString('base64'));
    const age = Date.now() - (scts[0]?.datetime?.getTime() ?? 0);
    check(age >= -1000 && age < 60000, 'SCT timestamp is now', age);
    check(!leaf.extension('1.3.6.1.4.1.11129.2.4.3'), 'no poison in the certificate');
  });

  await runCase('embedded SCT verified by @sigstore/verify (ctlogThreshold 1)', async () => {
    const email = 'ct-verify@example.com';
    const { bundle, artifact } = await signedBundle(email);
    const info = verifyBundle(bundle, artifact, caPems, {
      subjectAlternativeName: email,
      extensions: { issuer: ISSUER_URL },
    });
    check(info.identity?.subjectAlternativeName === email, 'verified with the SCT required',
      info.identity?.subjectAlternativeName);

    const wrongKey = structuredClone(rootJSON);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    wrongKey.ctlogs[0].publicKey.rawBytes =
      other.export({ format: 'der', type: 'spki' }).toString('base64');
    expectRejected('another key under the same log ID: SCT verification fails',
      () => verifyBundle(bundle, artifact, caPems, {}, { rootJSON: wrongKey }),
      'SCT verification failed');

    const later = structuredClone(rootJSON);
    later.ctlogs[0].publicKey.validFor = { start: new Date(Date.now() + 3600e3).toISOString() };
    expectRejected('a log only valid after the SCT: no usable log',
      () => verifyBundle(bundle, artifact, caPems, {}, { rootJSON: later }),
      'SCT verification failed');

    const noLogs = structuredClone(rootJSON);
    noLogs.ctlogs = [];
    expectRejected('no ctlogs in the trusted root: the SCT cannot be verified',
      () => verifyBundle(bundle, artifact, caPems, {}, { rootJSON: noLogs }),
      'SCT verification failed');
  });
}

async function offCases(caPems) {
  await runCase('CT off: detached answer, and an SCT-requiring verifier refuses', async () => {
    const { status, body } = await rawAnswer('ct-off@example.com');
    check(status === 200 && body.signedCertificateDetachedSct?.signedCertificateTimestamp === '',
      'detached answer with an empty signedCertificateTimestamp', JSON.stringify(body).slice(0, 200));
    const email = 'ct-off-verify@example.com';
    const { bundle, artifact } = await signedBundle(email);
    expectRejected('ctlogThreshold 1 without an SCT',
      () => verifyBundle(bundle, artifact, caPems, {}, { ctlogThreshold: 1 }),
      'expected 1 SCTs, got 0');
  });
}

export async function ctCases() {
  const caPems = await trustBundle();
  if (EMBEDDED) await embeddedCases(caPems);
  else await offCases(caPems);
}
