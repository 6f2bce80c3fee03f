//! AWS Signature Version 4 verification, so that AWS SDK clients authenticate to the
//! Kinesis-compatible API with the access key pair `tributary keys create --aws` issued.
//!
//! A signed request carries
//!
//! ```text
//! Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/<yyyymmdd>/<region>/<service>/aws4_request,
//!                SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=<64 hex>
//! X-Amz-Date: 20261123T060938Z
//! ```
//!
//! and the server recomputes the signature the way the SDK did:
//!
//! ```text
//! canonical request = METHOD \n canonical URI \n canonical query \n
//!                     name:trimmed value \n … (the signed headers) \n \n
//!                     signed header list \n hex SHA-256(body)
//! string to sign    = AWS4-HMAC-SHA256 \n X-Amz-Date \n <date>/<region>/<service>/aws4_request \n
//!                     hex SHA-256(canonical request)
//! signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
//! signature         = hex HMAC(signing key, string to sign)
//! ```
//!
//! The payload hash is always computed from the body received, so the signature covers the body
//! even when the client sent no `X-Amz-Content-Sha256`; when it did, that value must be the
//! body's hash (unsigned and streaming payloads are S3 features this API does not take).
//! `x-amz-security-token` is an ordinary signed header here: Tributary issues no temporary
//! credentials, and the signature alone proves the sender holds the secret access key.
//! Presigned (query-string) authentication is not accepted.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Uri};
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::keys::KeyRecord;

/// The only signing algorithm SigV4 defines for HMAC signatures.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The last element of every credential scope.
pub const TERMINATOR: &str = "aws4_request";

/// `X-Amz-Date`'s format, e.g. `20150830T123600Z`.
pub const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Why a request's signature was not accepted. Each variant is answered with the AWS error code
/// an SDK expects for it (see `kinesis::AwsError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// The request carries no SigV4 `Authorization` header.
    #[error("{0}")]
    Missing(String),
    /// The `Authorization` header or a header it depends on is malformed or incomplete.
    #[error("{0}")]
    Incomplete(String),
    /// The access key id is not one the key file knows.
    #[error("{0}")]
    UnknownAccessKey(String),
    /// `X-Amz-Date` is too far from the server's clock.
    #[error("{0}")]
    Expired(String),
    /// The signature (or the scope it was made for) does not match.
    #[error("{0}")]
    Mismatch(String),
}

/// The parts of an HTTP request a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The request target; its authority stands in for `Host` when that header is absent
    /// (HTTP/2 sends `:authority` instead).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The body exactly as received (before any `Content-Encoding` is undone).
    pub body: &'a [u8],
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id the request claims.
    pub access_key_id: String,
    /// The scope's date, `yyyymmdd`.
    pub date: String,
    /// The scope's region, e.g. `us-east-1`.
    pub region: String,
    /// The scope's service, e.g. `kinesis`.
    pub service: String,
    /// Lowercase names of the signed headers, in the order given.
    pub signed_headers: Vec<String>,
    /// The hex signature as sent.
    pub signature: String,
}

impl Authorization {
    /// `<date>/<region>/<service>/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

/// What a verification checks the request against.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The service name the credential scope must name (`kinesis`).
    pub service: &'a str,
    /// The server's current time.
    pub now: DateTime<Utc>,
    /// How far `X-Amz-Date` may be from `now`, either way.
    pub tolerance: Duration,
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Authorization, SigV4Error> {
    let incomplete = |what: &str| {
        SigV4Error::Incomplete(format!(
            "Authorization header {what}; expected \"{ALGORITHM} Credential=<access key id>/\
             <yyyymmdd>/<region>/<service>/{TERMINATOR}, SignedHeaders=<h1;h2;…>, \
             Signature=<hex>\""
        ))
    };
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(incomplete(&format!(
            "uses algorithm {algorithm:?}, not {ALGORITHM}"
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            continue;
        };
        match name.trim() {
            "Credential" => credential = Some(value.trim()),
            "SignedHeaders" => signed_headers = Some(value.trim()),
            "Signature" => signature = Some(value.trim()),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| incomplete("has no Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| incomplete("has no SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("has no Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(&format!(
            "has Credential {credential:?}, which is not 5 '/'-separated parts"
        )));
    };
    if terminator != TERMINATOR || [access_key_id, date, region, service].contains(&"") {
        return Err(incomplete(&format!(
            "has Credential {credential:?}, which does not end in /{TERMINATOR} or has an \
             empty part"
        )));
    }
    let signed_headers: Vec<String> = signed_headers
        .split(';')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    if signed_headers.is_empty() {
        return Err(incomplete("has an empty SignedHeaders list"));
    }
    Ok(Authorization {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_string(),
    })
}

/// Verifies the SigV4 signature of `request` and returns the key that signed it. `lookup`
/// finds a key by access key id (`KeyStore::by_access_key_id`).
pub fn verify(
    request: &SignedRequest<'_>,
    expect: &Expectation<'_>,
    lookup: impl FnOnce(&str) -> Option<Arc<KeyRecord>>,
) -> Result<Arc<KeyRecord>, SigV4Error> {
    let Some(header) = request.headers.get("authorization") else {
        return Err(SigV4Error::Missing(
            "missing authentication: sign the request with AWS Signature Version 4 (an \
             Authorization: AWS4-HMAC-SHA256 header), using the access key pair from \
             `tributary keys create --aws`; presigned URLs are not accepted"
                .into(),
        ));
    };
    let header = header
        .to_str()
        .map_err(|_| SigV4Error::Incomplete("Authorization header is not visible ASCII".into()))?;
    let auth = parse_authorization(header)?;
    let amz_date = request
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| {
            SigV4Error::Incomplete(
                "missing X-Amz-Date header: SigV4 requests must carry their signing time".into(),
            )
        })?;
    let signed_at = NaiveDateTime::parse_from_str(amz_date, AMZ_DATE_FORMAT)
        .map_err(|_| {
            SigV4Error::Incomplete(format!(
                "X-Amz-Date {amz_date:?} is not in the form yyyymmddThhmmssZ"
            ))
        })?
        .and_utc();
    if !amz_date.starts_with(&auth.date) || auth.date.len() != 8 {
        return Err(SigV4Error::Mismatch(format!(
            "the credential scope's date {} is not the date of X-Amz-Date {amz_date}",
            auth.date
        )));
    }
    if auth.service != expect.service {
        return Err(SigV4Error::Mismatch(format!(
            "the credential scope names service {:?}, but this endpoint is {:?}; sign for \
             {:?}",
            auth.service, expect.service, expect.service
        )));
    }
    // Without these two signed, a captured request could be replayed with a fresh date or to
    // another host.
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|name| name == required) {
            return Err(SigV4Error::Mismatch(format!(
                "SignedHeaders must include {required}"
            )));
        }
    }
    let record = lookup(&auth.access_key_id).ok_or_else(|| {
        SigV4Error::UnknownAccessKey(format!(
            "the access key id {} is not known to this server; create one with `tributary keys \
             create --aws`",
            auth.access_key_id
        ))
    })?;
    let Some(secret) = record.aws_secret_access_key.as_deref() else {
        return Err(SigV4Error::UnknownAccessKey(format!(
            "the access key id {} has no secret access key in the key file",
            auth.access_key_id
        )));
    };
    check_time(amz_date, signed_at, expect)?;
    let payload_hash = hex::encode(Sha256::digest(request.body));
    if let Some(declared) = request.headers.get("x-amz-content-sha256") {
        let declared = declared.to_str().unwrap_or("").trim();
        if !declared.eq_ignore_ascii_case(&payload_hash) {
            return Err(SigV4Error::Mismatch(format!(
                "X-Amz-Content-Sha256 {declared:?} is not the SHA-256 of the body received; \
                 unsigned and streaming payloads are not accepted"
            )));
        }
    }
    let canonical = canonical_request(request, &auth.signed_headers, &payload_hash)?;
    let to_sign = string_to_sign(amz_date, &auth.scope(), &canonical);
    let expected = signing_key(secret, &auth.date, &auth.region, &auth.service)
        .and_then(|key| signature(&key, &to_sign));
    // `None` means HMAC refused its key, which it never does; refuse rather than accept.
    let matches = expected.is_some_and(|expected| {
        bool::from(
            expected
                .as_bytes()
                .ct_eq(auth.signature.to_ascii_lowercase().as_bytes()),
        )
    });
    if matches {
        Ok(record)
    } else {
        Err(SigV4Error::Mismatch(format!(
            "the request signature we calculated does not match the signature you provided; \
             check the secret access key and the signing method. The canonical request was:\n\
             {canonical}\nThe string to sign was:\n{to_sign}"
        )))
    }
}

/// Refuses a signing time further than the tolerance from the server's clock, so a captured
/// request cannot be replayed later.
fn check_time(
    amz_date: &str,
    signed_at: DateTime<Utc>,
    expect: &Expectation<'_>,
) -> Result<(), SigV4Error> {
    let limit = chrono::Duration::from_std(expect.tolerance).unwrap_or(chrono::Duration::MAX);
    // A difference of two valid times cannot overflow, unlike `now ± tolerance`.
    let ahead = signed_at.signed_duration_since(expect.now);
    if ahead.abs() <= limit {
        return Ok(());
    }
    let now = expect.now.format(AMZ_DATE_FORMAT);
    let secs = expect.tolerance.as_secs();
    Err(SigV4Error::Expired(if ahead < chrono::Duration::zero() {
        format!(
            "Signature expired: X-Amz-Date {amz_date} is more than {secs} s before the server's \
             time {now} (signature_tolerance); check the producer's clock"
        )
    } else {
        format!(
            "Signature not yet current: X-Amz-Date {amz_date} is more than {secs} s after the \
             server's time {now} (signature_tolerance); check the producer's clock"
        )
    }))
}

/// The canonical request: method, canonical URI, canonical query string, the signed headers'
/// canonical lines, the signed header list and the payload hash, joined by newlines.
pub fn canonical_request(
    request: &SignedRequest<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> Result<String, SigV4Error> {
    let mut out = String::new();
    out.push_str(&request.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(&canonical_uri(request.uri.path()));
    out.push('\n');
    out.push_str(&canonical_query(request.uri.query()));
    out.push('\n');
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&canonical_header_value(request, name)?);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// All values of one signed header, each trimmed with inner whitespace runs collapsed to one
/// space, joined by commas.
fn canonical_header_value(request: &SignedRequest<'_>, name: &str) -> Result<String, SigV4Error> {
    let values: Vec<String> = request
        .headers
        .get_all(name)
        .iter()
        .map(|value| trim_all(&String::from_utf8_lossy(value.as_bytes())))
        .collect();
    if !values.is_empty() {
        return Ok(values.join(","));
    }
    if name == "host"
        && let Some(authority) = request.uri.authority()
    {
        return Ok(authority.as_str().to_string());
    }
    Err(SigV4Error::Mismatch(format!(
        "header {name:?} is listed in SignedHeaders but was not received"
    )))
}

fn trim_all(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical URI of a path as received (already percent-encoded once): dot segments and
/// empty segments removed, then every byte but unreserved characters and `/` percent-encoded
/// again — services other than S3 sign the path encoded twice.
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    uri_encode(normalized.as_bytes(), false)
}

/// The canonical query string: each name and value decoded, then encoded with only unreserved
/// characters left as they are, pairs sorted by name and then value.
pub fn canonical_query(query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name), true),
                uri_encode(&percent_decode(value), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SigV4's URI encoding: unreserved characters (`A-Z a-z 0-9 - _ . ~`) as they are, `/` as it
/// is unless `encode_slash`, every other byte as `%XX` with uppercase hex.
pub fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (byte == b'/' && !encode_slash) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Undoes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// `AWS4-HMAC-SHA256 \n <X-Amz-Date> \n <scope> \n hex SHA-256(canonical request)`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The signing key for one day, region and service. `None` only if HMAC refused a key, which
/// it never does (it takes keys of any length); callers then refuse the request.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Option<[u8; 32]> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes())?;
    let k_region = hmac_sha256(&k_date, region.as_bytes())?;
    let k_service = hmac_sha256(&k_region, service.as_bytes())?;
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

/// The hex signature of `string_to_sign` under `signing_key`.
pub fn signature(signing_key: &[u8], string_to_sign: &str) -> Option<String> {
    hmac_sha256(signing_key, string_to_sign.as_bytes()).map(hex::encode)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

/// A SigV4 signer for tests: adds `X-Amz-Date` and `Authorization` to a request, signing
/// every header it carries (plus `host` from the URI when there is no `Host` header), as the
/// AWS SDKs do.
#[cfg(test)]
pub(crate) fn sign_for_test(
    method: &str,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    (access_key_id, secret): (&str, &str),
    (region, service): (&str, &str),
    at: DateTime<Utc>,
) -> String {
    let amz_date = at.format(AMZ_DATE_FORMAT).to_string();
    headers.insert("x-amz-date", amz_date.parse().unwrap());
    let mut names: Vec<String> = headers.keys().map(|n| n.as_str().to_string()).collect();
    if !names.iter().any(|n| n == "host") {
        names.push("host".into());
    }
    names.sort();
    names.dedup();
    let request = SignedRequest {
        method,
        uri,
        headers,
        body,
    };
    let payload_hash = hex::encode(Sha256::digest(body));
    let canonical = canonical_request(&request, &names, &payload_hash).unwrap();
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/{TERMINATOR}");
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = signing_key(secret, date, region, service).unwrap();
    let signature = signature(&key, &to_sign).unwrap();
    let value = format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        names.join(";")
    );
    headers.insert("authorization", value.parse().unwrap());
    signature
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Role;
    use chrono::TimeZone;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn record(akid: &str, secret: &str) -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: "k_1".into(),
            hash: String::new(),
            tenant: "acme".into(),
            role: Role::Write,
            rate_limit: None,
            signing_secret: None,
            require_signature: false,
            aws_access_key_id: Some(akid.into()),
            aws_secret_access_key: Some(secret.into()),
            created_at: 0,
        })
    }

    fn vector_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
    }

    fn expect(service: &str, now: DateTime<Utc>) -> Expectation<'_> {
        Expectation {
            service,
            now,
            tolerance: Duration::from_secs(300),
        }
    }

    /// The SigV4 test suite's requests: `Host: example.amazonaws.com`, `X-Amz-Date`, no body.
    fn suite_headers(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={signature}"
        );
        headers.insert("authorization", auth.parse().unwrap());
        headers
    }

    fn verify_suite(method: &str, uri: &str, signature: &str) -> Result<(), SigV4Error> {
        let uri: Uri = uri.parse().unwrap();
        let headers = suite_headers(signature);
        let request = SignedRequest {
            method,
            uri: &uri,
            headers: &headers,
            body: b"",
        };
        verify(&request, &expect("service", vector_time()), |id| {
            (id == AKID).then(|| record(AKID, SECRET))
        })
        .map(|_| ())
    }

    #[test]
    fn get_vanilla_matches_the_published_steps() {
        // aws-sig-v4-test-suite/get-vanilla: each intermediate value as published.
        let uri: Uri = "/".parse().unwrap();
        let headers = suite_headers("");
        let request = SignedRequest {
            method: "GET",
            uri: &uri,
            headers: &headers,
            body: b"",
        };
        let signed = ["host".to_string(), "x-amz-date".to_string()];
        let canonical = canonical_request(&request, &signed, EMPTY_SHA256).unwrap();
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let to_sign = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            &canonical,
        );
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let key = signing_key(SECRET, "20150830", "us-east-1", "service").unwrap();
        assert_eq!(
            hex::encode(key),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"
        );
        assert_eq!(
            signature(&key, &to_sign).unwrap(),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn published_suite_signatures_verify() {
        verify_suite(
            "GET",
            "/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        )
        .unwrap();
        // get-vanilla-query-order-key-case: the query is sorted before signing.
        verify_suite(
            "GET",
            "/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        )
        .unwrap();
        // post-vanilla: an empty body hashes as the empty string.
        verify_suite(
            "POST",
            "/",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        )
        .unwrap();
        let err = verify_suite(
            "POST",
            "/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        )
        .unwrap_err();
        assert!(matches!(err, SigV4Error::Mismatch(_)), "{err:?}");
    }

    /// A PutRecord request exactly as botocore 1.43 signed it (captured before sending), so the
    /// verifier is checked against the SDK the e2e suite uses, not only against itself.
    #[test]
    fn botocore_put_record_verifies() {
        let uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "127.0.0.1:8080"),
            ("x-amz-target", "Kinesis_20131202.PutRecord"),
            ("content-type", "application/x-amz-json-1.1"),
            (
                "user-agent",
                "Botocore/1.43.11 ua/2.1 os/linux md/arch#x86_64",
            ),
            ("x-amz-date", "20261123T060938Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE0000/20261123/us-east-1/kinesis/\
                 aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
                 Signature=da1aa1d8aa5c4fd403b8abbf88ea7b7ba025d2563c24336486d58726f6ffc62d",
            ),
            (
                "amz-sdk-invocation-id",
                "7ca11c1b-42d9-4d31-83e2-fe82aa052ff5",
            ),
            ("amz-sdk-request", "attempt=1"),
            ("content-length", "115"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        let body = br#"{"StreamName": "events", "Data": "eyJldmVudF90eXBlIjoicGFnZSIsImFub255bW91c19pZCI6ImExIn0=", "PartitionKey": "s-1"}"#;
        let request = SignedRequest {
            method: "POST",
            uri: &uri,
            headers: &headers,
            body,
        };
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 6, 10, 0).unwrap();
        let found = verify(&request, &expect("kinesis", at), |id| {
            (id == "AKIAEXAMPLE0000").then(|| record(id, "secretsecret"))
        })
        .unwrap();
        assert_eq!(found.tenant, "acme");
        // The Host header is part of the signature.
        let mut moved = headers.clone();
        moved.insert("host", "127.0.0.1:8081".parse().unwrap());
        let request = SignedRequest {
            headers: &moved,
            ..request
        };
        let err = verify(&request, &expect("kinesis", at), |id| {
            Some(record(id, "secretsecret"))
        })
        .unwrap_err();
        assert!(matches!(err, SigV4Error::Mismatch(_)), "{err:?}");
    }

    fn signed(body: &[u8], at: DateTime<Utc>) -> (Uri, HeaderMap) {
        let uri: Uri = "http://127.0.0.1:8080/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-amz-json-1.1".parse().unwrap(),
        );
        headers.insert(
            "x-amz-target",
            "Kinesis_20131202.PutRecord".parse().unwrap(),
        );
        headers.insert("x-amz-security-token", "  a   token ".parse().unwrap());
        sign_for_test(
            "POST",
            &uri,
            &mut headers,
            body,
            ("AKIATEST", "s3cret"),
            ("eu-west-1", "kinesis"),
            at,
        );
        (uri, headers)
    }

    fn check(
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Arc<KeyRecord>, SigV4Error> {
        let request = SignedRequest {
            method: "POST",
            uri,
            headers,
            body,
        };
        verify(&request, &expect("kinesis", now), |id| {
            (id == "AKIATEST").then(|| record("AKIATEST", "s3cret"))
        })
    }

    #[test]
    fn signed_requests_round_trip_and_tampering_fails() {
        let now = Utc::now();
        let body = br#"{"StreamName":"events"}"#;
        let (uri, headers) = signed(body, now);
        // Signed with the authority standing in for Host, as over HTTP/2.
        check(&uri, &headers, body, now).unwrap();

        let err = check(&uri, &headers, br#"{"StreamName":"other"}"#, now).unwrap_err();
        assert!(matches!(err, SigV4Error::Mismatch(_)), "{err:?}");

        let mut changed = headers.clone();
        changed.insert(
            "x-amz-target",
            "Kinesis_20131202.PutRecords".parse().unwrap(),
        );
        assert!(matches!(
            check(&uri, &changed, body, now),
            Err(SigV4Error::Mismatch(_))
        ));

        // Whitespace inside a signed value is canonicalized, not significant.
        let mut spaced = headers.clone();
        spaced.insert("x-amz-security-token", "a token".parse().unwrap());
        check(&uri, &spaced, body, now).unwrap();

        let mut declared = headers.clone();
        declared.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        let err = check(&uri, &declared, body, now).unwrap_err();
        assert!(err.to_string().contains("X-Amz-Content-Sha256"), "{err}");
    }

    #[test]
    fn stale_and_future_dates_are_refused() {
        let now = Utc::now();
        let body = b"{}";
        let (uri, headers) = signed(body, now - chrono::Duration::seconds(301));
        let err = check(&uri, &headers, body, now).unwrap_err();
        assert!(matches!(err, SigV4Error::Expired(_)), "{err:?}");
        assert!(err.to_string().contains("more than 300 s"), "{err}");
        let (uri, headers) = signed(body, now + chrono::Duration::seconds(400));
        assert!(matches!(
            check(&uri, &headers, body, now),
            Err(SigV4Error::Expired(_))
        ));
        let (uri, headers) = signed(body, now - chrono::Duration::seconds(200));
        check(&uri, &headers, body, now).unwrap();
    }

    #[test]
    fn unknown_keys_wrong_secrets_and_scopes_are_named() {
        let now = Utc::now();
        let body = b"{}";
        let (uri, headers) = signed(body, now);
        let request = SignedRequest {
            method: "POST",
            uri: &uri,
            headers: &headers,
            body,
        };
        let err = verify(&request, &expect("kinesis", now), |_| None).unwrap_err();
        assert!(matches!(err, SigV4Error::UnknownAccessKey(_)), "{err:?}");
        assert!(err.to_string().contains("AKIATEST"), "{err}");
        let err = verify(&request, &expect("kinesis", now), |id| {
            Some(record(id, "other"))
        })
        .unwrap_err();
        assert!(matches!(err, SigV4Error::Mismatch(_)), "{err:?}");
        let err = verify(&request, &expect("firehose", now), |id| {
            Some(record(id, "s3cret"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("\"kinesis\""), "{err}");

        let mut missing = headers.clone();
        missing.remove("authorization");
        let request = SignedRequest {
            headers: &missing,
            ..request
        };
        assert!(matches!(
            verify(&request, &expect("kinesis", now), |_| None),
            Err(SigV4Error::Missing(_))
        ));
    }

    #[test]
    fn host_and_date_must_be_signed() {
        let uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", "h".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host, Signature=00"
                .parse()
                .unwrap(),
        );
        let request = SignedRequest {
            method: "GET",
            uri: &uri,
            headers: &headers,
            body: b"",
        };
        let err = verify(&request, &expect("service", vector_time()), |id| {
            Some(record(id, SECRET))
        })
        .unwrap_err();
        assert!(err.to_string().contains("x-amz-date"), "{err}");
    }

    #[test]
    fn malformed_authorization_headers_are_incomplete() {
        for value in [
            "AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=0",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=0",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, Signature=0",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=host, Signature=0",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/other, SignedHeaders=host, Signature=0",
            "Bearer trb_x",
        ] {
            assert!(
                matches!(parse_authorization(value), Err(SigV4Error::Incomplete(_))),
                "{value}"
            );
        }
        let parsed = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/kinesis/aws4_request,\
             SignedHeaders=Host;X-Amz-Date,Signature=ab",
        )
        .unwrap();
        assert_eq!(parsed.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(parsed.scope(), "20150830/us-east-1/kinesis/aws4_request");
    }

    #[test]
    fn uris_and_queries_are_canonicalized() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
        // Already encoded once by the client; non-S3 services sign it encoded twice.
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
        assert_eq!(canonical_query(Some("b=2&a=1&A=0")), "A=0&a=1&b=2");
        assert_eq!(canonical_query(Some("x=a b&y")), "x=a%20b&y=");
        assert_eq!(canonical_query(Some("k=%7e%2F")), "k=~%2F");
        assert_eq!(canonical_query(None), "");
    }
}
