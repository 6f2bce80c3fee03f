//! What the page URL tells: its host, its path, and its UTM campaign.
//!
//! Browser SDKs usually send `context.campaign` themselves, but server-side producers and
//! hand-written trackers often send only the page URL; reading `utm_*` from it gives their
//! events the same campaign columns.

use tributary_model::Campaign;
use url::form_urlencoded;

use super::url_parts::ParsedUrl;

/// Parses a page URL; `None` for an absent or blank one, `Some(Err(_))` for one that is not an
/// absolute URL (an enrichment miss).
pub fn parse_page_url(url: Option<&str>) -> Option<Result<ParsedUrl<'_>, url::ParseError>> {
    let url = url.map(str::trim).filter(|u| !u.is_empty())?;
    Some(ParsedUrl::parse(url))
}

/// The page's host, lowercase and without port or trailing dot.
pub fn page_host(url: &ParsedUrl) -> Option<String> {
    url.host()
        .map(|host| host.trim_end_matches('.').to_ascii_lowercase())
        .filter(|host| !host.is_empty())
}

/// The page's path as it appears in the URL (still percent-encoded), for producers that sent a
/// URL but no path; `None` for URLs without a hierarchical path (`mailto:`, `data:`).
pub fn page_path(url: &ParsedUrl) -> Option<String> {
    url.path().map(str::to_string)
}

/// The campaign in the URL's `utm_source`, `utm_medium`, `utm_campaign`, `utm_term` and
/// `utm_content` query parameters, percent-decoded; `None` when it has none of them.
///
/// Parameter names match case-insensitively (hand-built links say `UTM_Source`); the first
/// non-empty occurrence of each wins, and empty values count as absent.
pub fn campaign_from_url(url: &ParsedUrl) -> Option<Campaign> {
    let mut campaign = Campaign::default();
    let mut found = false;
    // A URL without a query has nothing to read; skip building the pair iterator.
    let query = url.query()?;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(field) = name
            .get(..4)
            .filter(|prefix| prefix.eq_ignore_ascii_case("utm_"))
            .and_then(|_| campaign_field(&mut campaign, &name[4..]))
        else {
            continue;
        };
        let value = value.trim();
        if field.is_none() && !value.is_empty() {
            *field = Some(value.to_string());
            found = true;
        }
    }
    found.then_some(campaign)
}

/// The `utm_medium` of the URL, when present and non-empty.
pub fn utm_medium(url: &ParsedUrl) -> Option<String> {
    form_urlencoded::parse(url.query()?.as_bytes())
        .find(|(name, value)| name.eq_ignore_ascii_case("utm_medium") && !value.trim().is_empty())
        .map(|(_, value)| value.trim().to_string())
}

/// The campaign field named by a `utm_` parameter's suffix.
fn campaign_field<'c>(campaign: &'c mut Campaign, suffix: &str) -> Option<&'c mut Option<String>> {
    let field = match suffix.to_ascii_lowercase().as_str() {
        "source" => &mut campaign.source,
        "medium" => &mut campaign.medium,
        "campaign" => &mut campaign.name,
        "term" => &mut campaign.term,
        "content" => &mut campaign.content,
        _ => return None,
    };
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ParsedUrl<'_> {
        ParsedUrl::parse(s).unwrap()
    }

    #[test]
    fn reads_every_utm_field_percent_decoded() {
        let campaign = campaign_from_url(&url(
            "https://shop.example.com/p?utm_source=news%20letter&utm_medium=email\
             &utm_campaign=spring+sale&utm_term=red%2Fshoes&utm_content=hero&x=1",
        ))
        .unwrap();
        assert_eq!(campaign.source.as_deref(), Some("news letter"));
        assert_eq!(campaign.medium.as_deref(), Some("email"));
        assert_eq!(campaign.name.as_deref(), Some("spring sale"));
        assert_eq!(campaign.term.as_deref(), Some("red/shoes"));
        assert_eq!(campaign.content.as_deref(), Some("hero"));
        assert!(campaign.extra.is_empty());
    }

    #[test]
    fn no_utm_is_no_campaign() {
        assert_eq!(campaign_from_url(&url("https://example.com/")), None);
        assert_eq!(
            campaign_from_url(&url("https://example.com/?q=1&utm_=x")),
            None
        );
        assert_eq!(
            campaign_from_url(&url("https://example.com/?utm_source=")),
            None
        );
    }

    #[test]
    fn names_match_case_insensitively_and_first_value_wins() {
        let campaign = campaign_from_url(&url(
            "https://example.com/?UTM_Source=a&utm_source=b&utm_medium=&utm_medium=cpc",
        ))
        .unwrap();
        assert_eq!(campaign.source.as_deref(), Some("a"));
        assert_eq!(campaign.medium.as_deref(), Some("cpc"));
        assert_eq!(campaign.name, None);
    }

    #[test]
    fn non_ascii_parameter_names_do_not_panic() {
        // "utmé" has a multi-byte character where a naive `[..4]` slice would split it.
        assert_eq!(
            campaign_from_url(&url("https://example.com/?ut%C3%A9=1&%C3%A9tm_x=2")),
            None
        );
    }

    #[test]
    fn medium_alone() {
        assert_eq!(
            utm_medium(&url("https://example.com/?utm_medium=CPC")).as_deref(),
            Some("CPC")
        );
        assert_eq!(utm_medium(&url("https://example.com/")), None);
    }

    #[test]
    fn host_and_path() {
        let u = url("https://Shop.Example.COM:8443/a/b%20c?x=1#top");
        assert_eq!(page_host(&u).as_deref(), Some("shop.example.com"));
        assert_eq!(page_path(&u).as_deref(), Some("/a/b%20c"));
        assert_eq!(page_path(&url("https://example.com")).as_deref(), Some("/"));
        assert_eq!(page_path(&url("mailto:a@example.com")), None);
        assert_eq!(page_host(&url("mailto:a@example.com")), None);
    }

    #[test]
    fn page_url_parsing() {
        assert!(parse_page_url(None).is_none());
        assert!(parse_page_url(Some("  ")).is_none());
        assert!(matches!(parse_page_url(Some("/relative")), Some(Err(_))));
        assert!(matches!(
            parse_page_url(Some(" https://example.com/ ")),
            Some(Ok(_))
        ));
    }
}
