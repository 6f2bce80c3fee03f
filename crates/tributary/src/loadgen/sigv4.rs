//! A small AWS Signature Version 4 signer: what an AWS SDK does before it sends a Kinesis
//! `PutRecords`, so the load generator exercises the collector's verification exactly as real
//! producers do.
//!
//! ```text
//! canonical request = METHOD \n URI \n query \n name:value \n … \n \n signed names \n hex SHA-256(body)
//! string to sign    = AWS4-HMAC-SHA256 \n X-Amz-Date \n <date>/<region>/<service>/aws4_request \n
//!                     hex SHA-256(canonical request)
//! signature         = hex HMAC(HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service),
//!                     "aws4_request"), string to sign)
//! ```
//!
//! Only what the load generator sends is covered: paths without dot segments and queries that
//! are already in canonical order (the Kinesis API has none). It is deliberately not shared with
//! the collector's verifier: a signer written from the specification, checked against AWS's
//! published test vectors, catches a mistake the verifier would otherwise agree with.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The signing algorithm.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// `X-Amz-Date`'s format.
pub const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// An AWS access key pair and the scope requests are signed for.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The access key id, named in the `Authorization` header.
    pub access_key_id: String,
    /// The secret access key; never sent.
    pub secret: String,
    /// The region of the credential scope, e.g. `us-east-1`.
    pub region: String,
    /// The service of the credential scope, e.g. `kinesis`.
    pub service: String,
}

/// The parts of a request a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path as sent (percent-encoded once), e.g. `/`.
    pub path: &'a str,
    /// The query string as sent, in canonical order, without `?`; empty for none.
    pub query: &'a str,
    /// The headers to sign: lowercase names and their values. `host` and `x-amz-date` must be
    /// among them.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body; see [`payload_hash`].
    pub payload_sha256: &'a str,
}

/// Hex SHA-256 of a body, computed once per body and reused for every request that sends it.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The `Authorization` header value for `request` signed at `amz_date` (`yyyymmddThhmmssZ`).
pub fn authorization(credentials: &Credentials, request: &Request<'_>, amz_date: &str) -> String {
    let mut headers: Vec<(&str, String)> = request
        .headers
        .iter()
        .map(|(name, value)| {
            (
                *name,
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let signed_names = headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        request.method,
        uri_encode(request.path),
        request.query
    );
    for (name, value) in &headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed_names);
    canonical.push('\n');
    canonical.push_str(request.payload_sha256);

    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!(
        "{date}/{}/{}/aws4_request",
        credentials.region, credentials.service
    );
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", credentials.secret).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, credentials.region.as_bytes());
    let k_service = hmac(&k_region, credentials.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
        credentials.access_key_id
    )
}

/// HMAC-SHA256. HMAC takes keys of any length, so creating it cannot fail; the zero fallback
/// exists only to avoid a panic path and would yield a signature the server refuses.
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

/// SigV4's URI encoding of a path: unreserved characters and `/` as they are, every other
/// byte as `%XX`. Applied to a path that is already percent-encoded, as non-S3 services expect.
fn uri_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &byte in path.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            service: "service".into(),
        }
    }

    #[test]
    fn get_vanilla_gives_the_published_signature() {
        // aws-sig-v4-test-suite/get-vanilla.
        let hash = payload_hash(b"");
        let request = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            payload_sha256: &hash,
        };
        let header = authorization(&example(), &request, "20150830T123600Z");
        assert_eq!(
            header,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn header_order_and_spacing_do_not_change_the_signature() {
        let hash = payload_hash(b"{}");
        let sign = |headers: &[(&str, &str)]| {
            let request = Request {
                method: "POST",
                path: "/",
                query: "",
                headers,
                payload_sha256: &hash,
            };
            authorization(&example(), &request, "20150830T123600Z")
        };
        assert_eq!(
            sign(&[("x-amz-date", "20150830T123600Z"), ("host", "h:1")]),
            sign(&[("host", "  h:1 "), ("x-amz-date", "20150830T123600Z")])
        );
    }

    #[test]
    fn paths_are_encoded_once_more() {
        assert_eq!(uri_encode("/a b/%20"), "/a%20b/%2520");
    }
}
