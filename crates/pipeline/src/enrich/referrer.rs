//! Referrer classification: where a visit came from, as a channel.
//!
//! The order of the rules matters, and is:
//!
//! 1. a referrer on the site itself (the page's registrable domain, or a configured internal
//!    host or its subdomains) is `internal` — navigation inside the site, even when the page URL
//!    still carries the landing page's `utm_*` parameters (single-page apps keep them);
//! 2. a paid or email campaign medium (`utm_medium`) is `paid` or `email`: the campaign tagged
//!    the link on purpose, and email clients usually send no referrer at all;
//! 3. no referrer is `direct`;
//! 4. otherwise the referrer's host decides: `email` (webmail), `social`, `search`, or `other`.
//!
//! Registrable domains are approximated without the Public Suffix List (which would be a
//! dependency and a data file to keep current): the last two labels of the host, or three when
//! the last two are a known multi-label suffix (`co.uk`, `com.au`, `github.io`, …) or a
//! country's generic second level (`co.`, `com.`, `org.`, … under a two-letter TLD). Sites whose
//! domains this gets wrong list them in `internal_hosts`.

use std::borrow::Cow;

use super::url_parts::ParsedUrl;

use super::EnrichError;

/// A referrer's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferrerClass {
    /// No referrer and no campaign.
    Direct,
    /// From the site itself.
    Internal,
    /// From a search engine.
    Search,
    /// From a social network or link aggregator.
    Social,
    /// From webmail, or an email campaign.
    Email,
    /// From a paid campaign (`utm_medium` of cpc, display, …).
    Paid,
    /// From anywhere else, or from a referrer that is not a URL.
    Other,
}

impl ReferrerClass {
    /// The value stored in [`tributary_model::Enrichment::referrer_class`].
    pub fn as_str(self) -> &'static str {
        match self {
            ReferrerClass::Direct => "direct",
            ReferrerClass::Internal => "internal",
            ReferrerClass::Search => "search",
            ReferrerClass::Social => "social",
            ReferrerClass::Email => "email",
            ReferrerClass::Paid => "paid",
            ReferrerClass::Other => "other",
        }
    }
}

/// The outcome of classifying one referrer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The channel.
    pub class: ReferrerClass,
    /// The referrer's host, lowercase and without port; `None` without a usable referrer URL.
    pub host: Option<String>,
    /// The referrer was present but not an absolute URL (an enrichment miss).
    pub bad_url: bool,
}

/// Classifies referrers; built once from the configured internal hosts.
#[derive(Debug, Clone, Default)]
pub struct ReferrerClassifier {
    /// Lowercase hosts, no leading or trailing dots.
    internal_hosts: Vec<String>,
}

/// `utm_medium` values (lowercased, without `-`, `_` and spaces) of paid traffic.
const PAID_MEDIUMS: &[&str] = &[
    "cpc",
    "ppc",
    "paid",
    "paidsearch",
    "paidsocial",
    "display",
    "cpm",
    "cpv",
    "cpa",
    "banner",
];

/// `utm_medium` values (normalized as for [`PAID_MEDIUMS`]) of email campaigns.
const EMAIL_MEDIUMS: &[&str] = &["email", "newsletter"];

/// Exact hosts of webmail services that do not start with `mail.` or `webmail.`.
const EMAIL_HOSTS: &[&str] = &[
    "outlook.live.com",
    "outlook.office.com",
    "outlook.office365.com",
];

/// Registrable domains of social networks and link aggregators (their subdomains included,
/// e.g. `m.facebook.com`, `l.facebook.com`, `old.reddit.com`).
const SOCIAL_DOMAINS: &[&str] = &[
    "facebook.com",
    "fb.com",
    "fb.me",
    "t.co",
    "twitter.com",
    "x.com",
    "linkedin.com",
    "lnkd.in",
    "instagram.com",
    "reddit.com",
    "redd.it",
    "youtube.com",
    "youtu.be",
    "tiktok.com",
    "threads.net",
    "bsky.app",
    "mastodon.social",
    "tumblr.com",
    "quora.com",
    "vk.com",
    "weibo.com",
    "snapchat.com",
    "discord.com",
    "t.me",
    "whatsapp.com",
    "news.ycombinator.com",
];

/// Brands whose every country domain is social (`pinterest.com`, `pinterest.co.uk`, …).
const SOCIAL_BRANDS: &[&str] = &["pinterest"];

/// Registrable domains or exact hosts of search engines.
const SEARCH_DOMAINS: &[&str] = &[
    "bing.com",
    "duckduckgo.com",
    "baidu.com",
    "ecosia.org",
    "search.brave.com",
    "naver.com",
    "seznam.cz",
    "qwant.com",
    "startpage.com",
    "ask.com",
    "search.aol.com",
    "sogou.com",
    "so.com",
    "kagi.com",
    "ya.ru",
];

/// Brands whose every country domain is a search engine (`google.de`, `yahoo.co.jp`, …).
const SEARCH_BRANDS: &[&str] = &["google", "yahoo", "yandex"];

/// Two-label public suffixes under which registrable domains have three labels. Includes a few
/// hosting platforms whose customers get subdomains, so two customers are not "internal" to
/// each other.
const MULTI_LABEL_SUFFIXES: &[&str] = &[
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "vercel.app",
    "netlify.app",
    "pages.dev",
    "workers.dev",
    "web.app",
    "firebaseapp.com",
    "appspot.com",
    "blogspot.com",
    "wordpress.com",
    "azurewebsites.net",
    "cloudfront.net",
    "myshopify.com",
];

/// Second levels that, under a two-letter country TLD, are public (`co.uk`, `com.br`, `ne.jp`).
const COUNTRY_SECOND_LEVELS: &[&str] = &[
    "co", "com", "net", "org", "gov", "edu", "ac", "ne", "or", "go", "gob", "mil", "nic", "ltd",
    "plc", "sch", "nom", "gv", "gen",
];

impl ReferrerClassifier {
    /// A classifier that also counts `internal_hosts` and their subdomains as internal. A host
    /// may be written `example.com`, `.example.com` or `*.example.com`; an empty one is refused.
    pub fn new(internal_hosts: &[String]) -> Result<ReferrerClassifier, EnrichError> {
        let internal_hosts = internal_hosts
            .iter()
            .map(|host| {
                let normalized = host
                    .trim()
                    .trim_start_matches("*.")
                    .trim_matches('.')
                    .to_ascii_lowercase();
                if normalized.is_empty() || normalized.contains(['/', ':', ' ']) {
                    Err(EnrichError::InternalHost { host: host.clone() })
                } else {
                    Ok(normalized)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(ReferrerClassifier { internal_hosts })
    }

    /// Classifies `referrer` for a page on `page_host` reached with the campaign medium
    /// `campaign_medium` (see the module documentation for the rules' order).
    pub fn classify(
        &self,
        referrer: Option<&str>,
        page_host: Option<&str>,
        campaign_medium: Option<&str>,
    ) -> Referrer {
        let referrer = referrer.map(str::trim).filter(|r| !r.is_empty());
        let (host, bad_url) = match referrer.map(ParsedUrl::parse) {
            None => (None, false),
            Some(Ok(url)) => (
                url.host().map(|host| normalize_host(host).into_owned()),
                false,
            ),
            Some(Err(_)) => (None, true),
        };
        let class = match &host {
            Some(host) if self.is_internal(host, page_host) => ReferrerClass::Internal,
            _ => match campaign_class(campaign_medium) {
                Some(class) => class,
                None if referrer.is_none() => ReferrerClass::Direct,
                None => host.as_deref().map_or(ReferrerClass::Other, classify_host),
            },
        };
        Referrer {
            class,
            host,
            bad_url,
        }
    }

    fn is_internal(&self, referrer_host: &str, page_host: Option<&str>) -> bool {
        let same_site = page_host.map(normalize_host).is_some_and(|page_host| {
            page_host == referrer_host
                || registrable_domain(&page_host) == registrable_domain(referrer_host)
        });
        same_site
            || self
                .internal_hosts
                .iter()
                .any(|internal| is_same_or_subdomain(referrer_host, internal))
    }
}

/// `paid` or `email` from a campaign medium, `None` for other mediums.
fn campaign_class(medium: Option<&str>) -> Option<ReferrerClass> {
    let medium: String = medium?
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    if PAID_MEDIUMS.contains(&medium.as_str()) {
        Some(ReferrerClass::Paid)
    } else if EMAIL_MEDIUMS.contains(&medium.as_str()) {
        Some(ReferrerClass::Email)
    } else {
        None
    }
}

/// The channel of an external referrer host (already normalized).
fn classify_host(host: &str) -> ReferrerClass {
    // Webmail first: mail.google.com and mail.yahoo.com belong to search brands.
    if host.starts_with("mail.") || host.starts_with("webmail.") || EMAIL_HOSTS.contains(&host) {
        return ReferrerClass::Email;
    }
    let domain = registrable_domain(host);
    let brand = domain.split('.').next().unwrap_or(domain);
    let listed = |list: &[&str]| list.iter().any(|d| is_same_or_subdomain(host, d));
    if listed(SOCIAL_DOMAINS) || SOCIAL_BRANDS.contains(&brand) {
        ReferrerClass::Social
    } else if listed(SEARCH_DOMAINS) || SEARCH_BRANDS.contains(&brand) {
        ReferrerClass::Search
    } else {
        ReferrerClass::Other
    }
}

/// Lowercase, without a trailing dot (`Example.COM.` is `example.com`). `Url` already drops
/// the port and lowercases hosts of http(s) URLs; other schemes keep their case.
fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `host` is `domain` or one of its subdomains (`m.facebook.com` is under `facebook.com`;
/// `notfacebook.com` is not).
fn is_same_or_subdomain(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// The approximate registrable domain of a normalized host (see the module documentation);
/// IP addresses and single-label hosts are their own domain.
pub fn registrable_domain(host: &str) -> &str {
    // Only a host with a colon or a numeric last character can be an IP address; the parse
    // is skipped for every other one.
    let could_be_ip =
        host.starts_with('[') || host.contains(':') || host.ends_with(|c: char| c.is_ascii_digit());
    if could_be_ip && (host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok()) {
        return host;
    }
    let labels_from_end = |n: usize| -> &str {
        // The domain of the last `n` labels starts after the `n`-th dot from the end.
        match host.rmatch_indices('.').nth(n - 1) {
            Some((dot, _)) => &host[dot + 1..],
            None => host,
        }
    };
    let suffix = labels_from_end(2);
    let mut suffix_labels = suffix.split('.');
    let second = suffix_labels.next().unwrap_or("");
    let tld = suffix_labels.next().unwrap_or("");
    let multi_label = MULTI_LABEL_SUFFIXES.contains(&suffix)
        || (tld.len() == 2 && COUNTRY_SECOND_LEVELS.contains(&second));
    labels_from_end(if multi_label { 3 } else { 2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> ReferrerClassifier {
        ReferrerClassifier::new(&["shop-partner.example".into(), "*.Acme-CDN.net".into()]).unwrap()
    }

    fn class(referrer: &str) -> ReferrerClass {
        classifier()
            .classify(Some(referrer), Some("www.acme.com"), None)
            .class
    }

    #[test]
    fn no_referrer_is_direct() {
        let c = classifier();
        for referrer in [None, Some(""), Some("   ")] {
            let r = c.classify(referrer, Some("www.acme.com"), None);
            assert_eq!(r.class, ReferrerClass::Direct);
            assert_eq!(r.host, None);
            assert!(!r.bad_url);
        }
    }

    #[test]
    fn same_site_and_configured_hosts_are_internal() {
        for referrer in [
            "https://www.acme.com/cart",
            "https://acme.com/",
            "https://blog.acme.com/post",
            "https://shop-partner.example/x",
            "https://eu.shop-partner.example/x",
            "https://static.acme-cdn.net/",
        ] {
            assert_eq!(class(referrer), ReferrerClass::Internal, "{referrer}");
        }
        assert_eq!(
            class("https://notshop-partner.example/"),
            ReferrerClass::Other
        );
    }

    #[test]
    fn search_engines() {
        for referrer in [
            "https://www.google.com/",
            "https://www.google.co.uk/search?q=x",
            "https://google.de/",
            "https://www.bing.com/search?q=x",
            "https://duckduckgo.com/",
            "https://search.yahoo.com/search?p=x",
            "https://www.baidu.com/s?wd=x",
            "https://yandex.ru/search/",
            "https://www.ecosia.org/search?q=x",
            "https://search.brave.com/search?q=x",
        ] {
            assert_eq!(class(referrer), ReferrerClass::Search, "{referrer}");
        }
        assert_eq!(class("https://brave.com/download"), ReferrerClass::Other);
    }

    #[test]
    fn social_networks() {
        for referrer in [
            "https://www.facebook.com/",
            "https://m.facebook.com/",
            "https://l.facebook.com/l.php?u=x",
            "https://t.co/abc",
            "https://twitter.com/x",
            "https://x.com/someone",
            "https://www.linkedin.com/feed/",
            "https://lnkd.in/abc",
            "https://www.instagram.com/",
            "https://www.pinterest.co.uk/pin/1",
            "https://old.reddit.com/r/rust",
            "https://www.youtube.com/watch?v=x",
            "https://www.tiktok.com/@x",
            "https://news.ycombinator.com/item?id=1",
        ] {
            assert_eq!(class(referrer), ReferrerClass::Social, "{referrer}");
        }
        // Only Hacker News, not every ycombinator.com page, is a link aggregator.
        assert_eq!(class("https://www.ycombinator.com/"), ReferrerClass::Other);
    }

    #[test]
    fn webmail() {
        for referrer in [
            "https://mail.google.com/mail/u/0/",
            "https://outlook.live.com/mail/0/inbox",
            "https://mail.yahoo.com/d/folders/1",
            "https://webmail.example-isp.net/",
            "https://mail.proton.me/u/0/inbox",
        ] {
            assert_eq!(class(referrer), ReferrerClass::Email, "{referrer}");
        }
    }

    #[test]
    fn everything_else_is_other() {
        assert_eq!(
            class("https://news.example.org/story"),
            ReferrerClass::Other
        );
        assert_eq!(
            class("android-app://com.example.reader/"),
            ReferrerClass::Other
        );
    }

    #[test]
    fn campaign_medium_wins_over_the_referrer_host() {
        let c = classifier();
        let page = Some("www.acme.com");
        let paid = c.classify(Some("https://www.google.com/"), page, Some("cpc"));
        assert_eq!(paid.class, ReferrerClass::Paid);
        assert_eq!(paid.host.as_deref(), Some("www.google.com"));
        for medium in ["ppc", "Paid", "paidsearch", "paid_search", "display", "CPM"] {
            assert_eq!(
                c.classify(Some("https://news.example.org/"), page, Some(medium))
                    .class,
                ReferrerClass::Paid,
                "{medium}"
            );
        }
        for medium in ["email", "E-mail", "newsletter"] {
            assert_eq!(
                c.classify(None, page, Some(medium)).class,
                ReferrerClass::Email,
                "{medium}"
            );
        }
        assert_eq!(
            c.classify(Some("https://www.google.com/"), page, Some("organic"))
                .class,
            ReferrerClass::Search
        );
        assert_eq!(
            c.classify(None, page, Some("cpc")).class,
            ReferrerClass::Paid
        );
    }

    #[test]
    fn internal_navigation_keeps_internal_despite_utm_on_the_page() {
        let r = classifier().classify(
            Some("https://www.acme.com/landing?utm_medium=cpc"),
            Some("www.acme.com"),
            Some("cpc"),
        );
        assert_eq!(r.class, ReferrerClass::Internal);
    }

    #[test]
    fn host_is_lowercase_without_port() {
        let r = classifier().classify(
            Some("HTTPS://WWW.Google.COM:8443/search?q=x"),
            Some("www.acme.com"),
            None,
        );
        assert_eq!(r.host.as_deref(), Some("www.google.com"));
        assert_eq!(r.class, ReferrerClass::Search);
    }

    #[test]
    fn unparsable_referrer_is_bad_url_and_other() {
        for referrer in ["/relative/path", "www.google.com", "http://", "ht tp://x"] {
            let r = classifier().classify(Some(referrer), Some("www.acme.com"), None);
            assert_eq!(r.class, ReferrerClass::Other, "{referrer}");
            assert_eq!(r.host, None, "{referrer}");
            assert!(r.bad_url, "{referrer}");
        }
    }

    #[test]
    fn without_a_page_host_only_configured_hosts_are_internal() {
        let c = classifier();
        let r = c.classify(Some("https://www.acme.com/"), None, None);
        assert_eq!(r.class, ReferrerClass::Other);
        let r = c.classify(Some("https://shop-partner.example/"), None, None);
        assert_eq!(r.class, ReferrerClass::Internal);
    }

    #[test]
    fn empty_internal_host_is_refused() {
        assert!(matches!(
            ReferrerClassifier::new(&["".into()]),
            Err(EnrichError::InternalHost { .. })
        ));
        assert!(ReferrerClassifier::new(&["https://acme.com/".into()]).is_err());
    }

    #[test]
    fn registrable_domains() {
        for (host, domain) in [
            ("www.acme.com", "acme.com"),
            ("acme.com", "acme.com"),
            ("a.b.acme.co.uk", "acme.co.uk"),
            ("acme.co.uk", "acme.co.uk"),
            ("www.google.com.br", "google.com.br"),
            ("alice.github.io", "alice.github.io"),
            ("localhost", "localhost"),
            ("192.168.1.10", "192.168.1.10"),
            ("[::1]", "[::1]"),
            ("co.uk", "co.uk"),
        ] {
            assert_eq!(registrable_domain(host), domain, "{host}");
        }
        // Two customers of one hosting platform are different sites.
        assert_ne!(
            registrable_domain("alice.github.io"),
            registrable_domain("bob.github.io")
        );
    }
}
