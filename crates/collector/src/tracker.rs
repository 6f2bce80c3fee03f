//! `GET /t.js`: Tributary's first-party browser tracker, served by the collector itself so
//! that a site needs one `<script>` tag and no third-party host.
//!
//! ```html
//! <script async src="https://collector.example/t.js" data-key="trb_…"></script>
//! ```
//!
//! The script (`assets/t.js`, compiled into the binary) sets a first-party anonymous id cookie
//! (`trb_aid`, one year), keeps a session id in `sessionStorage` (30 minutes of inactivity end
//! it), sends a page view on load and offers `tributary.track(name, properties)`,
//! `tributary.identify(userId, traits)` and `tributary.page()`. It batches in memory, posts the
//! native envelope to `POST /v1/events?key=…` every 2 s or at 20 events (`fetch` with
//! `keepalive`), and flushes with `navigator.sendBeacon` when the page is hidden. It posts
//! `text/plain`, which browsers send without a CORS preflight and [`crate::body`] accepts.

use axum::http::header;
use axum::response::IntoResponse;

/// The tracker's source. It is small enough to serve unminified: readable by the sites that
/// embed it, and debuggable without source maps.
pub const SCRIPT: &str = include_str!("../assets/t.js");

/// `GET /t.js`. Cached for five minutes only, so a new tracker reaches browsers soon after a
/// collector upgrade.
pub async fn script() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn serves_the_script_with_type_and_cache_headers() {
        let response = script().await.into_response();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/javascript; charset=utf-8"
        );
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=300");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, SCRIPT.as_bytes());
    }

    #[test]
    fn script_is_small_and_self_contained() {
        assert!(
            SCRIPT.len() < 5120,
            "t.js is {} bytes; keep it under 5 KB",
            SCRIPT.len()
        );
        assert!(!SCRIPT.contains("import"), "t.js must not import modules");
        assert!(!SCRIPT.contains("require"), "t.js must not require modules");
    }

    #[test]
    fn script_speaks_the_native_api() {
        for needle in [
            "/v1/events?key=",
            "trb_aid=",
            "SameSite=Lax",
            "sessionStorage",
            "sendBeacon",
            "keepalive: true",
            "visibilitychange",
            "pagehide",
            "randomUUID",
            "utm_",
            "event_type",
            "anonymous_id",
            "session_id",
            "sent_at",
        ] {
            assert!(SCRIPT.contains(needle), "t.js lacks {needle:?}");
        }
    }
}
