// tests/interop/bearer.mjs: the token in the Authorization header, as sigstore-go / cosign v3 send
// it, with the result consumed by sigstore-js's libraries.
//
// @sigstore/sign 4.x has no way to send the token as a header: FulcioSignerOptions are
// {fulcioBaseURL, identityProvider, keyHolder, retry, timeout}, and its Fulcio client posts
// {"credentials":{"oidcIdentityToken":...}} with only Content-Type and User-Agent headers. So this
// file implements sigstore-js's Signer interface itself, sending what sigstore-go sends
// (Authorization: Bearer, publicKeyRequest with algorithm "ECDSA", PoP over the email made with
// node:crypto, no credentials in the body), and then hands the result to @sigstore/sign's bundle
// builder and @sigstore/verify exactly as a FulcioSigner result would be.

import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { MessageSignatureBundleBuilder } from '@sigstore/sign';
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

// A sigstore-js Signer whose certificate request carries the token only in the header.
class BearerFulcioSigner {
  constructor(token, email) {
    this.token = token;
    this.email = email;
    this.keypair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.chain = null;
  }

  async certificate() {
    const publicKey = this.keypair.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const pop = cryptoSign('sha256', Buffer.from(this.email), this.keypair.privateKey);
    const res = await fetch(`${FULCRUM_URL}/api/v2/signingCert`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        Authorization: `Bearer ${this.token}`,
      },
      body: JSON.stringify({
        publicKeyRequest: {
          publicKey: { algorithm: 'ECDSA', content: publicKey },
          proofOfPossession: pop.toString('base64'),
        },
      }),
    });
    const text = await res.text();
    if (res.status !== 200) {
      throw Object.assign(new Error(`signingCert: ${res.status} ${text}`), {
        status: res.status,
        body: text,
      });
    }
    const body = JSON.parse(text);
    const signed = body.signedCertificateEmbeddedSct || body.signedCertificateDetachedSct;
    return signed.chain.certificates;
  }

  async sign(data) {
    if (!this.chain) this.chain = await this.certificate();
    return {
      signature: cryptoSign('sha256', data, this.keypair.privateKey),
      key: { $case: 'x509Certificate', certificate: this.chain[0] },
    };
  }
}

export async function bearerCases() {
  const caPems = await trustBundle();

  await runCase('bearer header request', async () => {
    const email = 'go-style@example.com';
    const token = await devToken({ email, sub: 'go-style' });
    const signer = new BearerFulcioSigner(token, email);
    const chain = await signer.certificate();
    check(chain.length === caPems.length + 1, 'chain = leaf + trust bundle', chain.length);

    const leaf = X509Certificate.parse(chain[0]);
    check(leaf.subjectAltName === email, '@sigstore/core: SAN is the token email',
      leaf.subjectAltName);
    const v2 = leaf.extension('1.3.6.1.4.1.57264.1.8');
    const url = Buffer.from(ISSUER_URL);
    check(v2 && v2.value.equals(Buffer.concat([Buffer.from([0x0c, url.length]), url])),
      '@sigstore/core: .1.8 extnValue = DER UTF8String of the issuer URL', v2 && v2.value.toString('hex'));
    check(v2 && v2.valueObj.subs?.[0]?.value.toString('utf8') === ISSUER_URL,
      '@sigstore/core: .1.8 parsed the way @sigstore/verify reads it');
    check(leaf.verify(X509Certificate.parse(chain[1])), '@sigstore/core: leaf signed by chain[1]');
    check(leaf.validForDate(new Date()), '@sigstore/core: leaf valid now');
    check(!leaf.isCA, 'leaf is not a CA');
    check(X509Certificate.parse(chain[chain.length - 1]).equals(
      X509Certificate.parse(caPems[caPems.length - 1])), 'chain ends at the trust bundle root');
  });

  await runCase('bearer header bundle verified by @sigstore/verify', async () => {
    const email = 'go-bundle@example.com';
    const token = await devToken({ email });
    const artifact = Buffer.from('signed after a bearer-header request');
    const builder = new MessageSignatureBundleBuilder({
      signer: new BearerFulcioSigner(token, email),
      witnesses: [],
    });
    const bundle = await builder.create({ data: artifact });
    const info = verifyBundle(bundle, artifact, caPems, {
      subjectAlternativeName: email,
      extensions: { issuer: ISSUER_URL },
    });
    check(info.identity?.subjectAlternativeName === email, '@sigstore/verify: SAN matches',
      info.identity?.subjectAlternativeName);

    let threw = null;
    try {
      verifyBundle(bundle, Buffer.from('some other artifact'), caPems, {});
    } catch (err) {
      threw = err;
    }
    check(threw && threw.code === 'SIGNATURE_ERROR',
      '@sigstore/verify rejects a different artifact', threw && threw.code);
  });

  await runCase('bearer header with a bad token', async () => {
    const token = await devToken({ email: 'go-bad@example.com', aud: 'not-sigstore' });
    let threw = null;
    try {
      await new BearerFulcioSigner(token, 'go-bad@example.com').certificate();
    } catch (err) {
      threw = err;
    }
    let body = null;
    try {
      body = JSON.parse(threw.body);
    } catch {
      // checked below
    }
    check(threw && threw.status === 400 && body && body.code === 3 &&
      String(body.message).startsWith('There was an error processing the identity token: ') &&
      Array.isArray(body.details) && body.details.length === 0,
    'wrong audience -> 400 {code:3, identity-token message, details:[]}', threw && threw.message);
  });
}
