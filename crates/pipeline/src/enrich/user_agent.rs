//! User agent parsing: browser, operating system, device type and bot detection.
//!
//! Parsing is [woothee](https://github.com/woothee/woothee)'s, with two additions: tablets are
//! told apart from phones (woothee calls both `smartphone`), and a short list of tokens catches
//! the scripts, monitors and headless browsers woothee's crawler list misses.
//!
//! Real traffic has few distinct user agent strings (a few thousand per day for a busy site),
//! while a regex-based parse costs microseconds; so results are kept in a bounded cache and the
//! common case is one hash lookup under a read lock.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

/// Parsed user agents by their text. Every event hashes its ~100-byte user agent to look it
/// up; foldhash does that several times faster than the default SipHash (still seeded per
/// process, so producers cannot aim collisions at the table).
type UaCache = HashMap<Box<str>, Arc<UaInfo>, foldhash::fast::RandomState>;

/// How many distinct user agent strings [`UserAgentParser`] remembers by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// User agents longer than this are parsed every time instead of cached: real browsers send a
/// few hundred bytes, and caching arbitrarily long producer-sent strings would let one client
/// pin megabytes of memory.
pub const MAX_CACHED_LEN: usize = 1024;

/// Lowercase substrings that mark a client as automated even when woothee does not know it.
const BOT_TOKENS: &[&str] = &[
    "bot",
    "spider",
    "crawl",
    "headless",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "httpclient",
    "monitor",
    "uptime",
    "lighthouse",
    "facebookexternalhit",
    "slurp",
];

/// Lowercase substrings that contain a [`BOT_TOKENS`] entry yet name real devices (Cubot makes
/// Android phones).
const NOT_BOT_TOKENS: &[&str] = &["cubot"];

/// What a device is, as far as its user agent tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// A desktop or laptop browser.
    Desktop,
    /// A phone.
    Mobile,
    /// A tablet.
    Tablet,
    /// A crawler, monitor or script.
    Bot,
    /// Anything else: TV, console, e-reader, unknown.
    Other,
}

impl DeviceType {
    /// The value stored in [`tributary_model::Enrichment::device_type`].
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Bot => "bot",
            DeviceType::Other => "other",
        }
    }
}

/// What one user agent string says about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaInfo {
    /// Browser or crawler name, e.g. `Chrome`, `Googlebot`.
    pub browser: Option<String>,
    /// Browser version, e.g. `120.0.6099.109`.
    pub browser_version: Option<String>,
    /// Operating system, e.g. `Windows 10`, `iOS`, `Android`.
    pub os: Option<String>,
    /// Operating system version where the user agent tells it.
    pub os_version: Option<String>,
    /// Device class.
    pub device_type: DeviceType,
    /// A crawler, monitor or script rather than a person.
    pub is_bot: bool,
    /// Whether anything was recognized: `false` is an enrichment miss.
    pub recognized: bool,
}

/// Parses user agent strings, caching the results. `Send + Sync`: one parser serves every
/// consumer thread.
pub struct UserAgentParser {
    cache: RwLock<UaCache>,
    capacity: usize,
}

impl std::fmt::Debug for UserAgentParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the cache's contents: thousands of user agent strings in a log line help nobody.
        f.debug_struct("UserAgentParser")
            .field("cached", &self.cached())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for UserAgentParser {
    fn default() -> Self {
        UserAgentParser::with_capacity(DEFAULT_CACHE_CAPACITY)
    }
}

impl UserAgentParser {
    /// A parser whose cache holds up to [`DEFAULT_CACHE_CAPACITY`] user agents.
    pub fn new() -> UserAgentParser {
        UserAgentParser::default()
    }

    /// A parser whose cache holds up to `capacity` user agents (0 disables the cache).
    pub fn with_capacity(capacity: usize) -> UserAgentParser {
        UserAgentParser {
            cache: RwLock::new(UaCache::default()),
            capacity,
        }
    }

    /// What `user_agent` says about the client, from the cache when it was seen before.
    pub fn parse(&self, user_agent: &str) -> Arc<UaInfo> {
        if let Some(info) = self.cache.read().get(user_agent) {
            return Arc::clone(info);
        }
        // Parse outside the lock: two threads may parse the same new string at once, which
        // costs a parse but never blocks readers behind a regex run.
        let info = Arc::new(parse_uncached(user_agent));
        if self.capacity > 0 && user_agent.len() <= MAX_CACHED_LEN {
            let mut cache = self.cache.write();
            // Clearing beats LRU bookkeeping here: the working set is small and refills within
            // a few events, and a full cache only happens under an unusual spread of strings.
            if cache.len() >= self.capacity {
                cache.clear();
            }
            cache.insert(user_agent.into(), Arc::clone(&info));
        }
        info
    }

    /// How many user agents are cached (for tests and diagnostics).
    pub fn cached(&self) -> usize {
        self.cache.read().len()
    }
}

/// Parses `user_agent` without the cache.
pub fn parse_uncached(user_agent: &str) -> UaInfo {
    let lower = user_agent.to_ascii_lowercase();
    let token_bot = has_bot_token(&lower);
    let Some(parsed) = woothee::parser::Parser::new().parse(user_agent) else {
        return UaInfo {
            browser: None,
            browser_version: None,
            os: None,
            os_version: None,
            device_type: if token_bot {
                DeviceType::Bot
            } else {
                DeviceType::Other
            },
            is_bot: token_bot,
            recognized: token_bot,
        };
    };
    let crawler = parsed.category == "crawler";
    let is_bot = crawler || token_bot;
    let device_type = if is_bot {
        DeviceType::Bot
    } else {
        match parsed.category {
            "pc" => DeviceType::Desktop,
            "smartphone" if is_tablet(parsed.os, &lower) => DeviceType::Tablet,
            "smartphone" | "mobilephone" => DeviceType::Mobile,
            _ => DeviceType::Other,
        }
    };
    let browser = known(parsed.name);
    let os = known(parsed.os).map(|os| os_name(&os).to_string());
    UaInfo {
        recognized: is_bot || browser.is_some() || os.is_some(),
        browser,
        browser_version: known(parsed.version),
        os,
        os_version: known(&parsed.os_version),
        device_type,
        is_bot,
    }
}

/// Woothee says `UNKNOWN` (or nothing) where it could not tell.
fn known(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN).then(|| value.to_string())
}

/// Woothee names iOS after the device (`iPhone`, `iPad`, `iPod`); the device is already in
/// `device_type`, so the operating system is reported as what it is.
fn os_name(woothee_os: &str) -> &str {
    match woothee_os {
        "iPhone" | "iPad" | "iPod" => "iOS",
        "Mac OSX" => "macOS",
        other => other,
    }
}

/// Woothee's `smartphone` covers tablets too: iPads say so in the OS, and Android tablets are
/// the Android user agents without the `Mobile` token (Google's guidance for tablet browsers).
fn is_tablet(woothee_os: &str, lower_user_agent: &str) -> bool {
    woothee_os == "iPad" || (woothee_os == "Android" && !lower_user_agent.contains("mobile"))
}

fn has_bot_token(lower_user_agent: &str) -> bool {
    BOT_TOKENS
        .iter()
        .any(|token| lower_user_agent.contains(token))
        && !NOT_BOT_TOKENS
            .iter()
            .any(|token| lower_user_agent.contains(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 \
        (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
    const CHROME_ANDROID_PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) \
        AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";
    const CHROME_ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) \
        AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Safari/537.36";
    const FIREFOX_MAC: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    const HEADLESS_CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
        (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36";
    const CUBOT_PHONE: &str = "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36";

    #[test]
    fn chrome_on_windows_is_a_desktop() {
        let info = parse_uncached(CHROME_WINDOWS);
        assert_eq!(info.browser.as_deref(), Some("Chrome"));
        assert_eq!(info.browser_version.as_deref(), Some("120.0.6099.109"));
        assert_eq!(info.os.as_deref(), Some("Windows 10"));
        assert_eq!(info.device_type, DeviceType::Desktop);
        assert!(!info.is_bot);
        assert!(info.recognized);
    }

    #[test]
    fn firefox_on_mac_is_a_desktop_on_macos() {
        let info = parse_uncached(FIREFOX_MAC);
        assert_eq!(info.browser.as_deref(), Some("Firefox"));
        assert_eq!(info.browser_version.as_deref(), Some("121.0"));
        assert_eq!(info.os.as_deref(), Some("macOS"));
        assert_eq!(info.device_type, DeviceType::Desktop);
    }

    #[test]
    fn iphone_is_mobile_ios() {
        let info = parse_uncached(SAFARI_IPHONE);
        assert_eq!(info.browser.as_deref(), Some("Safari"));
        assert_eq!(info.browser_version.as_deref(), Some("17.1"));
        assert_eq!(info.os.as_deref(), Some("iOS"));
        assert_eq!(info.os_version.as_deref(), Some("17.1"));
        assert_eq!(info.device_type, DeviceType::Mobile);
    }

    #[test]
    fn ipad_is_a_tablet() {
        let info = parse_uncached(SAFARI_IPAD);
        assert_eq!(info.os.as_deref(), Some("iOS"));
        assert_eq!(info.device_type, DeviceType::Tablet);
    }

    #[test]
    fn android_without_mobile_token_is_a_tablet() {
        assert_eq!(
            parse_uncached(CHROME_ANDROID_PHONE).device_type,
            DeviceType::Mobile
        );
        let tablet = parse_uncached(CHROME_ANDROID_TABLET);
        assert_eq!(tablet.device_type, DeviceType::Tablet);
        assert_eq!(tablet.os.as_deref(), Some("Android"));
        assert_eq!(tablet.os_version.as_deref(), Some("13"));
    }

    #[test]
    fn woothee_crawlers_are_bots() {
        let info = parse_uncached(GOOGLEBOT);
        assert!(info.is_bot);
        assert_eq!(info.device_type, DeviceType::Bot);
        assert_eq!(info.browser.as_deref(), Some("Googlebot"));
    }

    #[test]
    fn scripts_and_headless_browsers_are_bots() {
        for ua in [
            "curl/8.4.0",
            "Wget/1.21.4",
            "python-requests/2.31.0",
            "Go-http-client/2.0",
            "Apache-HttpClient/4.5.14 (Java/17.0.9)",
            "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            HEADLESS_CHROME,
        ] {
            let info = parse_uncached(ua);
            assert!(info.is_bot, "{ua}");
            assert_eq!(info.device_type, DeviceType::Bot, "{ua}");
            assert!(info.recognized, "{ua}");
        }
    }

    #[test]
    fn regression_cubot_phones_are_not_bots() {
        let info = parse_uncached(CUBOT_PHONE);
        assert!(!info.is_bot);
        assert_eq!(info.device_type, DeviceType::Mobile);
    }

    #[test]
    fn gibberish_is_a_miss_with_no_unknown_values() {
        for ua in ["", "-", "xyzzy", "Mozilla/5.0 (plugh)"] {
            let info = parse_uncached(ua);
            assert!(!info.recognized, "{ua:?}: {info:?}");
            assert_eq!(info.browser, None, "{ua:?}");
            assert_eq!(info.browser_version, None, "{ua:?}");
            assert_eq!(info.os, None, "{ua:?}");
            assert_eq!(info.os_version, None, "{ua:?}");
            assert_eq!(info.device_type, DeviceType::Other, "{ua:?}");
            assert!(!info.is_bot);
        }
    }

    #[test]
    fn cache_returns_the_same_parse_and_stays_bounded() {
        let parser = UserAgentParser::with_capacity(2);
        let first = parser.parse(CHROME_WINDOWS);
        let again = parser.parse(CHROME_WINDOWS);
        assert!(
            Arc::ptr_eq(&first, &again),
            "second parse comes from the cache"
        );
        parser.parse(SAFARI_IPHONE);
        assert_eq!(parser.cached(), 2);
        parser.parse(SAFARI_IPAD);
        assert!(parser.cached() <= 2);
        assert_eq!(
            *parser.parse(CHROME_WINDOWS),
            parse_uncached(CHROME_WINDOWS)
        );
    }

    #[test]
    fn overlong_user_agents_are_not_cached() {
        let parser = UserAgentParser::new();
        let long = format!("{CHROME_WINDOWS} {}", "x".repeat(MAX_CACHED_LEN));
        assert_eq!(parser.parse(&long).browser.as_deref(), Some("Chrome"));
        assert_eq!(parser.cached(), 0);
    }
}
