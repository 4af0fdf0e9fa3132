// tests/dev_issuer/jwt_check.mjs: an independent check of a dev-issuer token, with node:crypto
// only (no code shared with the issuer).
//   node jwt_check.mjs JWKS_FILE TOKEN
// Prints one JSON line: {"sig": S, "header": {...}, "payload": {...}, "sig_len": N} where S is
//   "valid"      RS256/ES256 signature verifies with the JWKS key named by kid (or, without a
//                kid, with some key of the header's type)
//   "invalid"    it does not
//   "no-key"     no JWKS key to try
//   "none"       alg none with an empty signature
//   "none+rs256" alg none whose signature is a valid RS256 one by the JWKS RSA key named by kid
//   "hs256-pem"  HS256 whose HMAC key is the SPKI PEM text of one of the JWKS's RSA keys
// ES256 signatures are read as JWS r||s (dsaEncoding 'ieee-p1363').
import { createHmac, createPublicKey, timingSafeEqual, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [jwksFile, token] = process.argv.slice(2);
const jwks = JSON.parse(readFileSync(jwksFile, 'utf8'));
const parts = token.split('.');
if (parts.length !== 3) throw new Error(`token has ${parts.length} segments`);
const [h64, p64, s64] = parts;
const header = JSON.parse(Buffer.from(h64, 'base64url').toString('utf8'));
let payload = null;
try {
  payload = JSON.parse(Buffer.from(p64, 'base64url').toString('utf8'));
} catch {
  payload = 'unparseable';
}
const input = Buffer.from(`${h64}.${p64}`);
const sig = Buffer.from(s64, 'base64url');

function publicKey(jwk) {
  return createPublicKey({ key: jwk, format: 'jwk' });
}

let result = 'no-key';
if (header.alg === 'none') {
  result = 'invalid';
  if (s64 === '') result = 'none';
  for (const jwk of jwks.keys.filter((k) => k.kty === 'RSA' && k.kid === header.kid)) {
    if (verify('sha256', input, publicKey(jwk), sig)) result = 'none+rs256';
  }
} else if (header.alg === 'HS256') {
  result = 'invalid';
  for (const jwk of jwks.keys.filter((k) => k.kty === 'RSA')) {
    const pem = publicKey(jwk).export({ type: 'spki', format: 'pem' });
    const mac = createHmac('sha256', pem).update(input).digest();
    if (mac.length === sig.length && timingSafeEqual(mac, sig)) result = 'hs256-pem';
  }
} else {
  const kty = header.alg === 'ES256' ? 'EC' : 'RSA';
  const candidates = jwks.keys.filter((k) =>
    header.kid !== undefined ? k.kid === header.kid : k.kty === kty);
  for (const jwk of candidates) {
    let ok = false;
    try {
      ok = verify('sha256', input, { key: publicKey(jwk), dsaEncoding: 'ieee-p1363' }, sig);
    } catch {
      ok = false; // e.g. an ES256 signature checked with an RSA key
    }
    result = ok ? 'valid' : result === 'valid' ? 'valid' : 'invalid';
  }
}
console.log(JSON.stringify({ sig: result, header, payload, sig_len: sig.length }));
