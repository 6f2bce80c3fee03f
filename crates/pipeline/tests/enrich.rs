//! Enrichment end to end: real user agents, referrers of every class, UTM links and IPs through
//! an [`Enricher`] with a geography database written by the test MaxMind DB writer.
// Test helpers fail by panicking: the panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mmdb.rs"]
mod mmdb;

use std::path::PathBuf;

use tempfile::TempDir;
use tributary_model::{Campaign, Enrichment, Event, EventContext, PageContext};
use tributary_pipeline::enrich::{EnrichConfig, EnrichError, EnrichReport, Enricher};

use mmdb::{MmdbWriter, city, country};

const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 \
    (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const CURL: &str = "curl/8.4.0";

/// A geography database with London (IPv4), Stockholm (IPv6) and a Country-only network, and
/// an enricher reading it.
struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    enricher: Enricher,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoIP2-City-Test.mmdb");
    MmdbWriter::new()
        .insert("81.2.69.0/24", city("GB", "ENG", "London"))
        .insert("2a02:aa1:1000::/36", city("SE", "AB", "Stockholm"))
        .insert("217.65.48.0/20", country("GI"))
        .write(&path);
    let enricher = Enricher::new(&EnrichConfig {
        geoip_database: Some(path.clone()),
        internal_hosts: vec!["acme-checkout.example".into()],
        ..EnrichConfig::default()
    })
    .unwrap();
    Fixture {
        _dir: dir,
        path,
        enricher,
    }
}

fn event(url: &str, referrer: Option<&str>, user_agent: &str, ip: &str) -> Event {
    Event {
        event_id: "e-1".into(),
        tenant_id: "acme".into(),
        anonymous_id: "anon-1".into(),
        user_id: None,
        session_id: "s-1".into(),
        event_type: "page".into(),
        event_family: "page".into(),
        ts: 1_700_000_000_000_000,
        received_at: 1_700_000_000_000_100,
        context: EventContext {
            page: Some(PageContext {
                url: Some(url.into()),
                referrer: referrer.map(Into::into),
                ..PageContext::default()
            }),
            user_agent: Some(user_agent.into()),
            ip: Some(ip.into()),
            ..EventContext::default()
        },
        properties: serde_json::Map::new(),
        enriched: None,
    }
}

/// Enriches `event` and checks the full client IP survives nowhere in it.
fn enrich(enricher: &Enricher, event: &mut Event) -> EnrichReport {
    let ip = event.context.ip.clone().unwrap_or_default();
    let report = enricher.enrich(event);
    let json = serde_json::to_string(&event).unwrap();
    if !ip.is_empty() && event.context.ip.as_deref() != Some(ip.as_str()) {
        assert!(!json.contains(&ip), "full IP {ip} leaked into {json}");
    }
    report
}

#[test]
fn chrome_desktop_from_google_search_in_london() {
    let f = fixture();
    let mut e = event(
        "https://www.acme.com/products/42",
        Some("https://www.google.co.uk/"),
        CHROME_WINDOWS,
        "81.2.69.142",
    );
    let report = enrich(&f.enricher, &mut e);
    assert_eq!(report, EnrichReport::default());
    assert_eq!(
        e.enriched.unwrap(),
        Enrichment {
            browser: Some("Chrome".into()),
            browser_version: Some("120.0.6099.109".into()),
            os: Some("Windows 10".into()),
            os_version: Some("NT 10.0".into()),
            device_type: Some("desktop".into()),
            is_bot: false,
            referrer_class: Some("search".into()),
            referrer_host: Some("www.google.co.uk".into()),
            page_host: Some("www.acme.com".into()),
            country: Some("GB".into()),
            region: Some("ENG".into()),
            city: Some("London".into()),
        }
    );
    assert_eq!(e.context.ip.as_deref(), Some("81.2.69.0"));
    assert_eq!(
        e.context.page.unwrap().path.as_deref(),
        Some("/products/42")
    );
    assert_eq!(e.context.campaign, None);
}

#[test]
fn iphone_from_a_paid_social_link_over_ipv6_in_stockholm() {
    let f = fixture();
    let mut e = event(
        "https://acme.com/spring?utm_source=facebook&utm_medium=paid_social\
         &utm_campaign=Spring%20Sale&utm_term=shoes&utm_content=carousel",
        Some("https://l.facebook.com/l.php?u=x"),
        SAFARI_IPHONE,
        "2a02:aa1:1001:5:dead:beef:cafe:1",
    );
    let report = enrich(&f.enricher, &mut e);
    assert_eq!(report, EnrichReport::default());
    assert_eq!(
        e.enriched.unwrap(),
        Enrichment {
            browser: Some("Safari".into()),
            browser_version: Some("17.1".into()),
            os: Some("iOS".into()),
            os_version: Some("17.1".into()),
            device_type: Some("mobile".into()),
            is_bot: false,
            referrer_class: Some("paid".into()),
            referrer_host: Some("l.facebook.com".into()),
            page_host: Some("acme.com".into()),
            country: Some("SE".into()),
            region: Some("AB".into()),
            city: Some("Stockholm".into()),
        }
    );
    assert_eq!(e.context.ip.as_deref(), Some("2a02:aa1:1001::"));
    assert_eq!(
        e.context.campaign,
        Some(Campaign {
            source: Some("facebook".into()),
            medium: Some("paid_social".into()),
            name: Some("Spring Sale".into()),
            term: Some("shoes".into()),
            content: Some("carousel".into()),
            extra: serde_json::Map::new(),
        })
    );
    assert_eq!(e.context.page.unwrap().path.as_deref(), Some("/spring"));
}

#[test]
fn ipad_from_social_with_a_country_only_record() {
    let f = fixture();
    let mut e = event(
        "https://acme.com/",
        Some("https://t.co/abc123"),
        SAFARI_IPAD,
        "217.65.48.7",
    );
    let report = enrich(&f.enricher, &mut e);
    assert_eq!(report, EnrichReport::default());
    let enriched = e.enriched.unwrap();
    assert_eq!(enriched.device_type.as_deref(), Some("tablet"));
    assert_eq!(enriched.os.as_deref(), Some("iOS"));
    assert_eq!(enriched.os_version.as_deref(), Some("16.6"));
    assert_eq!(enriched.browser.as_deref(), Some("Safari"));
    assert_eq!(enriched.referrer_class.as_deref(), Some("social"));
    assert_eq!(enriched.referrer_host.as_deref(), Some("t.co"));
    assert_eq!(enriched.country.as_deref(), Some("GI"));
    assert_eq!(enriched.region, None);
    assert_eq!(enriched.city, None);
    assert_eq!(e.context.ip.as_deref(), Some("217.65.48.0"));
}

#[test]
fn googlebot_direct_is_a_bot() {
    let f = fixture();
    let mut e = event(
        "https://acme.com/sitemap",
        None,
        GOOGLEBOT,
        "::ffff:81.2.69.200",
    );
    let report = enrich(&f.enricher, &mut e);
    assert_eq!(report, EnrichReport::default());
    assert_eq!(
        e.enriched.unwrap(),
        Enrichment {
            browser: Some("Googlebot".into()),
            browser_version: None,
            os: None,
            os_version: None,
            device_type: Some("bot".into()),
            is_bot: true,
            referrer_class: Some("direct".into()),
            referrer_host: None,
            page_host: Some("acme.com".into()),
            country: Some("GB".into()),
            region: Some("ENG".into()),
            city: Some("London".into()),
        }
    );
    // An IPv4-mapped address is anonymized as the IPv4 address it carries.
    assert_eq!(e.context.ip.as_deref(), Some("81.2.69.0"));
}

#[test]
fn curl_from_webmail_outside_the_database_is_a_bot_and_a_geo_miss() {
    let f = fixture();
    let mut e = event(
        "https://acme.com/",
        Some("https://mail.google.com/mail/u/0/"),
        CURL,
        "198.51.100.23",
    );
    let report = enrich(&f.enricher, &mut e);
    assert_eq!(
        report,
        EnrichReport {
            geo_miss: true,
            ..EnrichReport::default()
        }
    );
    let enriched = e.enriched.unwrap();
    assert!(enriched.is_bot);
    assert_eq!(enriched.device_type.as_deref(), Some("bot"));
    assert_eq!(enriched.referrer_class.as_deref(), Some("email"));
    assert_eq!(enriched.referrer_host.as_deref(), Some("mail.google.com"));
    assert_eq!(enriched.country, None);
    assert_eq!(enriched.region, None);
    assert_eq!(enriched.city, None);
    assert_eq!(e.context.ip.as_deref(), Some("198.51.100.0"));
}

#[test]
fn every_referrer_class() {
    let f = fixture();
    for (url, referrer, class, host) in [
        ("https://www.acme.com/", None, "direct", None),
        ("https://www.acme.com/", Some(""), "direct", None),
        (
            "https://www.acme.com/b",
            Some("https://shop.acme.com/a"),
            "internal",
            Some("shop.acme.com"),
        ),
        (
            "https://www.acme.com/thanks",
            Some("https://pay.acme-checkout.example/done"),
            "internal",
            Some("pay.acme-checkout.example"),
        ),
        (
            "https://www.acme.com/",
            Some("https://duckduckgo.com/"),
            "search",
            Some("duckduckgo.com"),
        ),
        (
            "https://www.acme.com/",
            Some("https://news.ycombinator.com/item?id=1"),
            "social",
            Some("news.ycombinator.com"),
        ),
        (
            "https://www.acme.com/",
            Some("https://outlook.live.com/mail/0/"),
            "email",
            Some("outlook.live.com"),
        ),
        (
            "https://www.acme.com/?utm_medium=newsletter",
            None,
            "email",
            None,
        ),
        (
            "https://www.acme.com/?utm_medium=cpc&utm_source=bing",
            Some("https://www.bing.com/"),
            "paid",
            Some("www.bing.com"),
        ),
        (
            "https://www.acme.com/",
            Some("https://blog.example.org/post"),
            "other",
            Some("blog.example.org"),
        ),
    ] {
        let mut e = event(url, referrer, CHROME_WINDOWS, "81.2.69.1");
        let report = enrich(&f.enricher, &mut e);
        assert_eq!(report, EnrichReport::default(), "{url} {referrer:?}");
        let enriched = e.enriched.unwrap();
        assert_eq!(
            enriched.referrer_class.as_deref(),
            Some(class),
            "{url} {referrer:?}"
        );
        assert_eq!(
            enriched.referrer_host.as_deref(),
            host,
            "{url} {referrer:?}"
        );
    }
}

#[test]
fn bad_url_and_bad_ip_are_reported_and_the_ip_dropped() {
    let f = fixture();
    let mut e = event(
        "/relative/page",
        Some("not a url"),
        "xyzzy",
        "81.2.69.142 (proxy)",
    );
    let report = enrich(&f.enricher, &mut e);
    assert_eq!(
        report,
        EnrichReport {
            user_agent_miss: true,
            geo_miss: false,
            bad_url: true,
            bad_ip: true,
        }
    );
    assert_eq!(e.context.ip, None);
    let json = serde_json::to_string(&e).unwrap();
    assert!(!json.contains("81.2.69.142"), "{json}");
    let enriched = e.enriched.unwrap();
    assert_eq!(enriched.referrer_class.as_deref(), Some("other"));
    assert_eq!(enriched.page_host, None);
    assert_eq!(enriched.country, None);
    assert_eq!(enriched.device_type.as_deref(), Some("other"));
}

#[test]
fn one_enricher_serves_many_threads() {
    let f = fixture();
    let enricher = std::sync::Arc::new(f.enricher);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let enricher = std::sync::Arc::clone(&enricher);
            std::thread::spawn(move || {
                for n in 0..200 {
                    let ua = if (i + n) % 2 == 0 {
                        CHROME_WINDOWS
                    } else {
                        SAFARI_IPHONE
                    };
                    let mut e = event("https://acme.com/", None, ua, "81.2.69.9");
                    enricher.enrich(&mut e);
                    assert_eq!(e.enriched.unwrap().city.as_deref(), Some("London"));
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn a_database_without_geography_is_refused_naming_its_path() {
    let f = fixture();
    let asn = f.path.with_file_name("GeoLite2-ASN.mmdb");
    MmdbWriter::new()
        .database_type("GeoLite2-ASN")
        .insert("81.2.69.0/24", country("GB"))
        .write(&asn);
    let err = Enricher::new(&EnrichConfig {
        geoip_database: Some(asn.clone()),
        ..EnrichConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, EnrichError::GeoDatabase { ref path, .. } if *path == asn));
    assert!(err.to_string().contains("GeoLite2-ASN.mmdb"), "{err}");
}
