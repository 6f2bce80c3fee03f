//! Enrichment: what the pipeline derives from an event's context before it reaches the lake.
//!
//! ```text
//!  context.user_agent ──► user_agent ──► browser, os, device_type, is_bot
//!  context.page.url ────► campaign ───► page_host, page.path, context.campaign (utm_*)
//!  context.page.referrer ► referrer ──► referrer_class, referrer_host
//!  context.ip ──────────► geo ────────► country, region, city
//!             └─────────► ip ─────────► context.ip anonymized (last, after geo)
//! ```
//!
//! Every lookup can miss, and a miss never rejects the event: the field stays `None` and the
//! [`EnrichReport`] says which kind missed, for the pipeline's miss counters.
//!
//! Enrichment is a pure function of the event and the configuration (the caches only make it
//! faster), so replaying the raw archive reproduces it; running it again on an enriched event
//! derives the same fields, except geography, which then comes from the anonymized network.

pub mod campaign;
pub mod geo;
pub mod ip;
pub mod referrer;
mod url_parts;
pub mod user_agent;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tributary_model::{Enrichment, Event};

use self::geo::GeoDatabase;
use self::referrer::ReferrerClassifier;
use self::user_agent::UserAgentParser;

/// Settings of enrichment (the binary deserializes these from `[pipeline.enrichment]` TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichConfig {
    /// Parse `context.user_agent` into browser, OS, device type and bot flag.
    pub user_agent: bool,
    /// Classify `context.page.referrer` (`search`, `social`, `email`, `internal`, `paid`,
    /// `other`, `direct`) and keep its host.
    pub referrer: bool,
    /// Fill `context.campaign` from the page URL's `utm_*` parameters when the producer sent
    /// none (a campaign the producer sent always wins).
    pub campaign_from_url: bool,
    /// Hosts, and their subdomains, whose referrals count as `internal` besides the page's own
    /// site, e.g. a checkout on another domain (`checkout.example-pay.com`).
    pub internal_hosts: Vec<String>,
    /// A MaxMind-format City or Country database (`.mmdb`: GeoLite2, GeoIP2, DB-IP lite) for
    /// country, region and city; unset means no geography.
    pub geoip_database: Option<PathBuf>,
    /// Truncate `context.ip` to its network (IPv4 /24, IPv6 /48) after the geography lookup.
    /// An IP that does not parse is always dropped, whatever this says.
    pub anonymize_ip: bool,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            user_agent: true,
            referrer: true,
            campaign_from_url: true,
            internal_hosts: Vec::new(),
            geoip_database: None,
            anonymize_ip: true,
        }
    }
}

/// Why enrichment could not start.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The geography database could not be read or is not a City or Country database.
    #[error("geography database {}: {message}", path.display())]
    GeoDatabase {
        /// The configured `geoip_database`.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An `internal_hosts` entry is not a host name.
    #[error(
        "enrichment internal_hosts entry {host:?} is not a host name (write `example.com`, \
         which includes its subdomains)"
    )]
    InternalHost {
        /// The entry as configured.
        host: String,
    },
}

/// Which lookups missed for one event, for the pipeline's "enrichment misses" counters by kind.
/// Absent inputs are not misses: an event without a user agent has nothing to miss.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EnrichReport {
    /// A user agent was sent but nothing in it was recognized.
    pub user_agent_miss: bool,
    /// A valid IP was sent, a geography database is configured, and it has no record for it.
    pub geo_miss: bool,
    /// The page URL or the referrer is not an absolute URL.
    pub bad_url: bool,
    /// The IP is not an IP address; it was dropped from the event.
    pub bad_ip: bool,
}

/// Derives [`Enrichment`] for events. `Send + Sync` and built once: share it with an `Arc`
/// (or inside the pipeline) across every consumer thread.
#[derive(Debug)]
pub struct Enricher {
    config: EnrichConfig,
    user_agents: UserAgentParser,
    referrers: ReferrerClassifier,
    geo: Option<GeoDatabase>,
}

impl Enricher {
    /// Builds an enricher, reading the geography database when one is configured (the error
    /// names its path).
    pub fn new(config: &EnrichConfig) -> Result<Enricher, EnrichError> {
        let geo = config
            .geoip_database
            .as_deref()
            .map(GeoDatabase::open)
            .transpose()?;
        if let Some(geo) = &geo {
            tracing::info!(
                path = %geo.path().display(),
                database_type = geo.database_type(),
                "geography database loaded"
            );
        }
        Ok(Enricher {
            config: config.clone(),
            user_agents: UserAgentParser::new(),
            referrers: ReferrerClassifier::new(&config.internal_hosts)?,
            geo,
        })
    }

    /// The configuration this enricher was built from.
    pub fn config(&self) -> &EnrichConfig {
        &self.config
    }

    /// Fills `event.enriched` (replacing whatever was there: producers never send it), the
    /// page's path from its URL when missing, `context.campaign` from the URL's `utm_*` when
    /// the producer sent none, then anonymizes `context.ip` (or drops it when it is not an IP).
    pub fn enrich(&self, event: &mut Event) -> EnrichReport {
        let mut report = EnrichReport::default();
        let mut enriched = Enrichment::default();
        let context = &mut event.context;

        let page_url =
            match campaign::parse_page_url(context.page.as_ref().and_then(|p| p.url.as_deref())) {
                Some(Ok(url)) => Some(url),
                Some(Err(_)) => {
                    report.bad_url = true;
                    None
                }
                None => None,
            };
        // The parsed URL borrows the page's text, so what it gives is collected first and
        // written into the page after.
        let mut path_from_url = None;
        let mut medium_from_url = None;
        if let Some(url) = &page_url {
            enriched.page_host = campaign::page_host(url);
            if context
                .page
                .as_ref()
                .is_some_and(|page| page.path.as_deref().is_none_or(str::is_empty))
            {
                path_from_url = Some(campaign::page_path(url));
            }
            if self.config.campaign_from_url && context.campaign.is_none() {
                context.campaign = campaign::campaign_from_url(url);
            }
            if self.config.referrer && context.campaign.is_none() {
                medium_from_url = campaign::utm_medium(url);
            }
        }
        if let Some(path) = path_from_url
            && let Some(page) = context.page.as_mut()
        {
            page.path = path;
        }

        if self.config.referrer {
            // The event's campaign (the producer's, or just read from the URL) says how the
            // visit was bought; without one, the URL may still say it when campaign filling is
            // off.
            let medium = match &context.campaign {
                Some(campaign) => campaign.medium.clone(),
                None => medium_from_url,
            };
            let referrer = self.referrers.classify(
                context.page.as_ref().and_then(|p| p.referrer.as_deref()),
                enriched.page_host.as_deref(),
                medium.as_deref(),
            );
            report.bad_url |= referrer.bad_url;
            enriched.referrer_class = Some(referrer.class.as_str().to_string());
            enriched.referrer_host = referrer.host;
        }

        if self.config.user_agent
            && let Some(ua) = context
                .user_agent
                .as_deref()
                .filter(|ua| !ua.trim().is_empty())
        {
            let info = self.user_agents.parse(ua);
            report.user_agent_miss = !info.recognized;
            enriched.browser = info.browser.clone();
            enriched.browser_version = info.browser_version.clone();
            enriched.os = info.os.clone();
            enriched.os_version = info.os_version.clone();
            enriched.device_type = Some(info.device_type.as_str().to_string());
            enriched.is_bot = info.is_bot;
        }

        if let Some(raw) = context.ip.take() {
            match ip::parse(&raw) {
                None => report.bad_ip = true,
                Some(addr) => {
                    if let Some(geo) = &self.geo {
                        match geo.lookup(addr) {
                            Ok(Some(place)) => {
                                enriched.country = place.country;
                                enriched.region = place.region;
                                enriched.city = place.city;
                            }
                            Ok(None) => report.geo_miss = true,
                            Err(error) => {
                                // Only a corrupt database fails here; it is counted as a miss
                                // and logged at debug, since it would repeat for every event.
                                tracing::debug!(%error, "geography lookup failed");
                                report.geo_miss = true;
                            }
                        }
                    }
                    context.ip = Some(if self.config.anonymize_ip {
                        ip::text(ip::truncate(addr))
                    } else {
                        raw
                    });
                }
            }
        }

        event.enriched = Some(enriched);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_model::{Campaign, EventContext, PageContext};

    fn event(context: EventContext) -> Event {
        Event {
            event_id: "e1".into(),
            tenant_id: "acme".into(),
            anonymous_id: "anon".into(),
            user_id: None,
            session_id: "s1".into(),
            event_type: "page".into(),
            event_family: "page".into(),
            ts: 1,
            received_at: 2,
            context,
            properties: serde_json::Map::new(),
            enriched: None,
        }
    }

    fn page(url: &str, referrer: Option<&str>) -> Option<PageContext> {
        Some(PageContext {
            url: Some(url.into()),
            referrer: referrer.map(Into::into),
            ..PageContext::default()
        })
    }

    fn enricher(config: EnrichConfig) -> Enricher {
        Enricher::new(&config).unwrap()
    }

    #[test]
    fn config_defaults_and_toml_names() {
        let config: EnrichConfig = serde_json::from_str(r#"{"internal_hosts":["a.com"]}"#).unwrap();
        assert_eq!(
            config,
            EnrichConfig {
                internal_hosts: vec!["a.com".into()],
                ..EnrichConfig::default()
            }
        );
        assert!(config.user_agent && config.referrer && config.campaign_from_url);
        assert!(config.anonymize_ip);
        assert_eq!(config.geoip_database, None);
        assert!(serde_json::from_str::<EnrichConfig>(r#"{"geoip":"x"}"#).is_err());
    }

    #[test]
    fn enricher_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Enricher>();
    }

    #[test]
    fn page_fields_campaign_and_referrer() {
        let mut e = event(EventContext {
            page: page(
                "https://Shop.Acme.com/sale?utm_source=google&utm_medium=cpc&utm_campaign=spring",
                Some("https://www.google.com/"),
            ),
            ..EventContext::default()
        });
        let report = enricher(EnrichConfig::default()).enrich(&mut e);
        assert_eq!(report, EnrichReport::default());
        let enriched = e.enriched.unwrap();
        assert_eq!(enriched.page_host.as_deref(), Some("shop.acme.com"));
        assert_eq!(enriched.referrer_class.as_deref(), Some("paid"));
        assert_eq!(enriched.referrer_host.as_deref(), Some("www.google.com"));
        let page = e.context.page.unwrap();
        assert_eq!(page.path.as_deref(), Some("/sale"));
        let campaign = e.context.campaign.unwrap();
        assert_eq!(campaign.source.as_deref(), Some("google"));
        assert_eq!(campaign.medium.as_deref(), Some("cpc"));
        assert_eq!(campaign.name.as_deref(), Some("spring"));
    }

    #[test]
    fn producer_campaign_and_path_win() {
        let producer = Campaign {
            source: Some("newsletter-42".into()),
            medium: Some("email".into()),
            ..Campaign::default()
        };
        let mut e = event(EventContext {
            page: Some(PageContext {
                url: Some("https://acme.com/a?utm_source=x&utm_medium=cpc".into()),
                path: Some("/custom".into()),
                ..PageContext::default()
            }),
            campaign: Some(producer.clone()),
            ..EventContext::default()
        });
        enricher(EnrichConfig::default()).enrich(&mut e);
        assert_eq!(e.context.campaign, Some(producer));
        assert_eq!(e.context.page.unwrap().path.as_deref(), Some("/custom"));
        // The producer's medium decides the class, not the URL's.
        assert_eq!(e.enriched.unwrap().referrer_class.as_deref(), Some("email"));
    }

    #[test]
    fn campaign_from_url_can_be_turned_off_yet_still_classifies() {
        let mut e = event(EventContext {
            page: page("https://acme.com/?utm_medium=cpc", None),
            ..EventContext::default()
        });
        enricher(EnrichConfig {
            campaign_from_url: false,
            ..EnrichConfig::default()
        })
        .enrich(&mut e);
        assert_eq!(e.context.campaign, None);
        assert_eq!(e.enriched.unwrap().referrer_class.as_deref(), Some("paid"));
    }

    #[test]
    fn bad_page_url_is_reported() {
        let mut e = event(EventContext {
            page: page("not a url", Some("also not")),
            ..EventContext::default()
        });
        let report = enricher(EnrichConfig::default()).enrich(&mut e);
        assert!(report.bad_url);
        let enriched = e.enriched.unwrap();
        assert_eq!(enriched.page_host, None);
        assert_eq!(enriched.referrer_class.as_deref(), Some("other"));
        assert_eq!(e.context.page.unwrap().path, None);
    }

    #[test]
    fn no_page_is_direct_and_no_miss() {
        let mut e = event(EventContext::default());
        let report = enricher(EnrichConfig::default()).enrich(&mut e);
        assert_eq!(report, EnrichReport::default());
        let enriched = e.enriched.unwrap();
        assert_eq!(enriched.referrer_class.as_deref(), Some("direct"));
        assert_eq!(enriched.device_type, None);
        assert!(!enriched.is_bot);
    }

    #[test]
    fn user_agent_and_referrer_can_be_turned_off() {
        let mut e = event(EventContext {
            page: page("https://acme.com/", Some("https://t.co/x")),
            user_agent: Some("curl/8.4.0".into()),
            ..EventContext::default()
        });
        enricher(EnrichConfig {
            user_agent: false,
            referrer: false,
            ..EnrichConfig::default()
        })
        .enrich(&mut e);
        let enriched = e.enriched.unwrap();
        assert_eq!(enriched.referrer_class, None);
        assert_eq!(enriched.referrer_host, None);
        assert_eq!(enriched.device_type, None);
        assert!(!enriched.is_bot);
        assert_eq!(enriched.page_host.as_deref(), Some("acme.com"));
    }

    #[test]
    fn unknown_user_agent_is_a_miss() {
        let mut e = event(EventContext {
            user_agent: Some("xyzzy".into()),
            ..EventContext::default()
        });
        let report = enricher(EnrichConfig::default()).enrich(&mut e);
        assert!(report.user_agent_miss);
        assert_eq!(e.enriched.unwrap().device_type.as_deref(), Some("other"));
    }

    #[test]
    fn ip_is_anonymized_or_dropped() {
        let enricher = enricher(EnrichConfig::default());
        let mut e = event(EventContext {
            ip: Some("203.0.113.77".into()),
            ..EventContext::default()
        });
        let report = enricher.enrich(&mut e);
        assert_eq!(e.context.ip.as_deref(), Some("203.0.113.0"));
        // No database configured: geography is off, not missing.
        assert!(!report.geo_miss && !report.bad_ip);

        let mut e = event(EventContext {
            ip: Some("203.0.113.77, 10.0.0.1".into()),
            ..EventContext::default()
        });
        assert!(enricher.enrich(&mut e).bad_ip);
        assert_eq!(e.context.ip, None);
    }

    #[test]
    fn ip_kept_whole_when_anonymization_is_off_but_garbage_still_dropped() {
        let enricher = enricher(EnrichConfig {
            anonymize_ip: false,
            ..EnrichConfig::default()
        });
        let mut e = event(EventContext {
            ip: Some("2001:db8::1".into()),
            ..EventContext::default()
        });
        enricher.enrich(&mut e);
        assert_eq!(e.context.ip.as_deref(), Some("2001:db8::1"));
        let mut e = event(EventContext {
            ip: Some("alice@example.com".into()),
            ..EventContext::default()
        });
        assert!(enricher.enrich(&mut e).bad_ip);
        assert_eq!(e.context.ip, None);
    }

    #[test]
    fn enriching_twice_gives_the_same_event() {
        let enricher = enricher(EnrichConfig::default());
        let mut e = event(EventContext {
            page: page(
                "https://acme.com/p?utm_source=x",
                Some("https://duckduckgo.com/"),
            ),
            user_agent: Some(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
                    .into(),
            ),
            ip: Some("198.51.100.23".into()),
            ..EventContext::default()
        });
        enricher.enrich(&mut e);
        let once = e.clone();
        enricher.enrich(&mut e);
        assert_eq!(e, once);
    }

    #[test]
    fn bad_internal_host_fails_construction() {
        let err = Enricher::new(&EnrichConfig {
            internal_hosts: vec![" ".into()],
            ..EnrichConfig::default()
        })
        .unwrap_err();
        assert!(matches!(err, EnrichError::InternalHost { .. }));
    }

    #[test]
    fn missing_geo_database_fails_construction_naming_the_path() {
        let err = Enricher::new(&EnrichConfig {
            geoip_database: Some("/nonexistent/GeoLite2-City.mmdb".into()),
            ..EnrichConfig::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/GeoLite2-City.mmdb"),
            "{err}"
        );
    }
}
