// tests/interop/fulcio_signer.mjs: @sigstore/sign's own FulcioSigner against Fulcrum.
//
// This is sigstore-js's real request path: FulcioSigner -> CAClient -> POST /api/v2/signingCert
// with the token in credentials.oidcIdentityToken, publicKeyRequest {algorithm "ECDSA", P-256 SPKI
// PEM, base64 ECDSA-SHA256 signature over the token's email}, sent with make-fetch-happen.

import { X509Certificate as NodeX509, verify as cryptoVerify } from 'node:crypto';
import { FulcioSigner, MessageSignatureBundleBuilder } from '@sigstore/sign';
import { X509Certificate } from '@sigstore/core';
import {
  FULCRUM_URL,
  ISSUER_URL,
  check,
  devToken,
  runCase,
  trustBundle,
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

export async function fulcioSignerCases() {
  const caPems = await trustBundle();
  check(Array.isArray(caPems) && caPems.length >= 1, 'trustBundle has a chain');

  await runCase('FulcioSigner.sign', async () => {
    const email = 'js-alice@example.com';
    const token = await devToken({ email, sub: 'js-alice' });
    const data = Buffer.from('artifact signed through sigstore-js');
    const sig = await signer(token).sign(data);

    check(sig.key.$case === 'x509Certificate', 'FulcioSigner returns a certificate', sig.key.$case);
    const pem = sig.key.certificate;
    const cert = new NodeX509(pem);
    check(cert.subjectAltName === `email:${email}`, 'SAN carries the token email (node:crypto)',
      cert.subjectAltName);
    check(cryptoVerify('sha256', data, cert.publicKey, sig.signature),
      'artifact signature verifies with the certified key');
    const issuing = new NodeX509(caPems[0]);
    check(cert.checkIssued(issuing) && cert.verify(issuing.publicKey),
      'leaf is issued and signed by the trustBundle CA (node:crypto)');
    const validity = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 1000;
    check(validity === 600, 'validity is 10 minutes', validity);

    // The same certificate through @sigstore/core, the parser sigstore-js verifies with.
    const core = X509Certificate.parse(pem);
    check(core.subjectAltName === email, '@sigstore/core reads the rfc822Name SAN',
      core.subjectAltName);
    check(core.extSubjectAltName?.critical === true, 'SAN is critical');
    check(core.extKeyUsage?.critical === true && core.extKeyUsage.digitalSignature === true,
      'keyUsage critical digitalSignature');
    const v1 = core.extension('1.3.6.1.4.1.57264.1.1');
    check(v1 && v1.value.toString('utf8') === ISSUER_URL, '.1.1 issuer = dev issuer URL',
      v1 && v1.value.toString('utf8'));
    check(core.verify(X509Certificate.parse(caPems[0])), '@sigstore/core verifies the leaf');
  });

  await runCase('FulcioSigner bundle verified by @sigstore/verify', async () => {
    const email = 'js-bundle@example.com';
    const token = await devToken({ email });
    const artifact = Buffer.from('bundle me');
    const builder = new MessageSignatureBundleBuilder({ signer: signer(token), witnesses: [] });
    const bundle = await builder.create({ data: artifact });
    const kind = bundle.verificationMaterial.content.$case;
    check(kind === 'x509CertificateChain' || kind === 'certificate',
      'bundle holds the Fulcrum certificate', kind);
    const signerInfo = verifyBundle(bundle, artifact, caPems, {
      subjectAlternativeName: email,
      extensions: { issuer: ISSUER_URL },
    });
    check(signerInfo.identity?.subjectAlternativeName === email,
      '@sigstore/verify: identity SAN matches', signerInfo.identity?.subjectAlternativeName);
    check(signerInfo.identity?.extensions?.issuer === ISSUER_URL,
      '@sigstore/verify: issuer read from .1.8 matches', signerInfo.identity?.extensions?.issuer);

    let threw = null;
    try {
      verifyBundle(bundle, artifact, caPems, { subjectAlternativeName: 'someone-else@example.com' });
    } catch (err) {
      threw = err;
    }
    check(threw && threw.name === 'PolicyError', '@sigstore/verify rejects another identity',
      threw && threw.name);
  });

  await runCase('FulcioSigner with an expired token', async () => {
    const token = await devToken({ email: 'js-late@example.com', exp_in: '-60' });
    let threw = null;
    try {
      await signer(token).sign(Buffer.from('x'));
    } catch (err) {
      threw = err;
    }
    check(threw && threw.code === 'CA_CREATE_SIGNING_CERTIFICATE_ERROR',
      'sigstore-js reports CA_CREATE_SIGNING_CERTIFICATE_ERROR', threw && threw.code);
    const cause = threw && threw.cause;
    check(cause && cause.statusCode === 400, 'underlying HTTP status is 400 (not retried)',
      cause && cause.statusCode);
    check(cause && String(cause.message).startsWith(
      '(400) There was an error processing the identity token: '),
    "sigstore-js surfaces Fulcio's identity-token message", cause && cause.message);
  });
}
