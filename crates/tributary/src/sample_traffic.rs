//! A generator of realistic sample clickstream: shop visits as a web analytics SDK reports them.
//!
//! `tributary serve --sample-traffic` feeds it into the stream; the collector's load generator
//! will reuse it to send the same traffic over HTTP. It is deterministic for a given seed, so a
//! test or a benchmark can replay exactly the same events.
//!
//! The model is a pool of concurrent visits to a few tenants' shops. Each call advances one
//! random visit by one event, so events of different sessions interleave the way they do at a
//! real collector, while each session stays in order:
//!
//! ```text
//! landing page ─▶ browse: category pages, product pages + "Product Viewed"
//!                   │ ├─▶ "Product Added" (cart)
//!                   │ ├─▶ login: "identify" (the anonymous visitor gets a user_id)
//!                   │ └─▶ checkout page, "identify" if still anonymous, "Order Completed"
//!                   └─▶ leave
//! ```
//!
//! Finished visitors may come back later with the same `anonymous_id` (and their `user_id`, if
//! they identified), which is what identity stitching needs to see.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Number, Value};
use tributary_model::{Campaign, Event, EventContext, PageContext, TimestampMicros};

/// Tenants and their share of the traffic (weights).
const TENANTS: &[(&str, u32)] = &[("acme", 6), ("globex", 3), ("initech", 1)];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
];

const LOCALES: &[&str] = &["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP"];

/// `utm_source`, `utm_medium`, `utm_campaign`.
type Utm = (&'static str, &'static str, &'static str);

/// External referrers of landing pages, with the campaign they carry (if any).
const ENTRANCES: &[(&str, Option<Utm>)] = &[
    ("https://www.google.com/", None),
    (
        "https://www.google.com/",
        Some(("google", "cpc", "spring_sale")),
    ),
    (
        "https://www.facebook.com/",
        Some(("facebook", "social", "spring_sale")),
    ),
    (
        "https://mail.example.net/",
        Some(("newsletter", "email", "weekly_picks")),
    ),
    ("", None),
];

struct Product {
    sku: &'static str,
    name: &'static str,
    category: &'static str,
    price_cents: u64,
}

const CATALOG: &[Product] = &[
    Product {
        sku: "sku-1001",
        name: "Trail Running Shoes",
        category: "shoes",
        price_cents: 12_900,
    },
    Product {
        sku: "sku-1002",
        name: "Leather Sneakers",
        category: "shoes",
        price_cents: 8_950,
    },
    Product {
        sku: "sku-1003",
        name: "Wool Hiking Socks",
        category: "shoes",
        price_cents: 1_800,
    },
    Product {
        sku: "sku-2001",
        name: "Rain Jacket",
        category: "outerwear",
        price_cents: 15_900,
    },
    Product {
        sku: "sku-2002",
        name: "Down Vest",
        category: "outerwear",
        price_cents: 11_000,
    },
    Product {
        sku: "sku-2003",
        name: "Fleece Pullover",
        category: "outerwear",
        price_cents: 6_400,
    },
    Product {
        sku: "sku-3001",
        name: "Daypack 22L",
        category: "bags",
        price_cents: 7_900,
    },
    Product {
        sku: "sku-3002",
        name: "Travel Duffel",
        category: "bags",
        price_cents: 9_900,
    },
    Product {
        sku: "sku-4001",
        name: "Insulated Bottle",
        category: "accessories",
        price_cents: 2_999,
    },
    Product {
        sku: "sku-4002",
        name: "Merino Beanie",
        category: "accessories",
        price_cents: 3_200,
    },
    Product {
        sku: "sku-4003",
        name: "Headlamp",
        category: "accessories",
        price_cents: 4_450,
    },
    Product {
        sku: "sku-5001",
        name: "Camp Stove",
        category: "camping",
        price_cents: 5_999,
    },
    Product {
        sku: "sku-5002",
        name: "Two-Person Tent",
        category: "camping",
        price_cents: 24_900,
    },
    Product {
        sku: "sku-5003",
        name: "Sleeping Pad",
        category: "camping",
        price_cents: 8_500,
    },
];

const CATEGORIES: &[&str] = &["shoes", "outerwear", "bags", "accessories", "camping"];

/// How many visits are under way at once (the interleaving at the collector).
const CONCURRENT_VISITS: usize = 64;
/// How many past visitors are remembered as possible returning visitors.
const RETURNING_POOL: usize = 1000;
/// Share of new visits made by a returning visitor.
const RETURNING_SHARE: f64 = 0.3;
/// A visit ends after this many actions even if the visitor never decides to leave.
const MAX_ACTIONS: u32 = 15;

/// Generates sample clickstream events; see the module documentation for the model.
pub struct SampleTraffic {
    rng: StdRng,
    visits: Vec<Visit>,
    returning: Vec<Visitor>,
    next_user: u64,
    next_order: u64,
}

/// One browser: the cookie id survives across visits, the user id once known.
#[derive(Clone)]
struct Visitor {
    tenant: &'static str,
    anonymous_id: String,
    user_id: Option<String>,
    user_agent: &'static str,
    locale: &'static str,
    ip: String,
}

/// One session of a visitor.
struct Visit {
    visitor: Visitor,
    session_id: String,
    /// Events planned by the last action, emitted one per call so sessions interleave.
    pending: VecDeque<Planned>,
    /// The page the visitor is on; its URL is the next page's referrer.
    page: Option<PageContext>,
    entrance: &'static str,
    campaign: Option<Campaign>,
    last_product: Option<&'static Product>,
    cart: Vec<(&'static Product, u64)>,
    actions: u32,
    done: bool,
}

/// An event planned but not emitted yet.
enum Planned {
    Page {
        path: String,
        title: String,
    },
    Track {
        name: &'static str,
        properties: Map<String, Value>,
    },
    Identify {
        user_id: String,
    },
}

impl SampleTraffic {
    /// A generator whose output is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SampleTraffic {
            rng: StdRng::seed_from_u64(seed),
            visits: Vec::with_capacity(CONCURRENT_VISITS + 1),
            returning: Vec::new(),
            next_user: 1,
            next_order: 1,
        }
    }

    /// `count` events stamped around `now` (µs since the epoch).
    pub fn batch(&mut self, count: usize, now: TimestampMicros) -> Vec<Event> {
        (0..count).map(|_| self.next_event(now)).collect()
    }

    /// The next event of a random ongoing visit, which happened at `now`.
    pub fn next_event(&mut self, now: TimestampMicros) -> Event {
        loop {
            if self.visits.len() < CONCURRENT_VISITS {
                let visit = self.start_visit();
                self.visits.push(visit);
            }
            let index = self.rng.random_range(0..self.visits.len());
            if self.visits[index].pending.is_empty() {
                if self.visits[index].done {
                    let visit = self.visits.swap_remove(index);
                    self.remember(visit.visitor);
                    continue;
                }
                self.plan(index);
            }
            if let Some(planned) = self.visits[index].pending.pop_front() {
                return self.emit(index, planned, now);
            }
        }
    }

    fn start_visit(&mut self) -> Visit {
        let visitor = if !self.returning.is_empty() && self.rng.random_bool(RETURNING_SHARE) {
            let index = self.rng.random_range(0..self.returning.len());
            self.returning.swap_remove(index)
        } else {
            self.new_visitor()
        };
        let (entrance, campaign) = *pick(&mut self.rng, ENTRANCES);
        Visit {
            visitor,
            session_id: uuid(&mut self.rng),
            pending: VecDeque::new(),
            page: None,
            entrance,
            campaign: campaign.map(|(source, medium, name)| Campaign {
                source: Some(source.into()),
                medium: Some(medium.into()),
                name: Some(name.into()),
                ..Campaign::default()
            }),
            last_product: None,
            cart: Vec::new(),
            actions: 0,
            done: false,
        }
    }

    fn new_visitor(&mut self) -> Visitor {
        let total: u32 = TENANTS.iter().map(|(_, w)| w).sum();
        let mut ticket = self.rng.random_range(0..total);
        let mut tenant = TENANTS[0].0;
        for (name, weight) in TENANTS {
            if ticket < *weight {
                tenant = name;
                break;
            }
            ticket -= weight;
        }
        Visitor {
            tenant,
            anonymous_id: uuid(&mut self.rng),
            user_id: None,
            user_agent: pick::<&str>(&mut self.rng, USER_AGENTS),
            locale: pick::<&str>(&mut self.rng, LOCALES),
            // TEST-NET-3 (RFC 5737): realistic shape, never a real person's address.
            ip: format!("203.0.113.{}", self.rng.random_range(1..255)),
        }
    }

    fn remember(&mut self, visitor: Visitor) {
        if self.returning.len() < RETURNING_POOL {
            self.returning.push(visitor);
        } else {
            let index = self.rng.random_range(0..self.returning.len());
            self.returning[index] = visitor;
        }
    }

    /// Decides the visit's next action and queues its events (or ends the visit).
    fn plan(&mut self, index: usize) {
        let rng = &mut self.rng;
        let visit = &mut self.visits[index];
        visit.actions += 1;
        if visit.actions == 1 {
            match rng.random_range(0..10) {
                0..5 => visit.pending.push_back(Planned::Page {
                    path: "/".into(),
                    title: "Home".into(),
                }),
                5..8 => {
                    let category = pick(rng, CATEGORIES);
                    visit.pending.push_back(category_page(category));
                }
                _ => view_product(visit, pick(rng, CATALOG)),
            }
            return;
        }
        if visit.actions > MAX_ACTIONS {
            visit.done = true;
            return;
        }
        let roll: f64 = rng.random();
        if !visit.cart.is_empty() && roll < 0.10 {
            self.checkout(index);
        } else if let (Some(product), true) = (visit.last_product, roll < 0.25) {
            let quantity = if rng.random_bool(0.85) { 1 } else { 2 };
            visit.cart.push((product, quantity));
            let mut properties = Map::new();
            properties.insert("item_id".into(), product.sku.into());
            properties.insert("quantity".into(), quantity.into());
            properties.insert("price".into(), dollars(product.price_cents));
            visit.pending.push_back(Planned::Track {
                name: "Product Added",
                properties,
            });
        } else if roll < 0.70 {
            view_product(visit, pick(rng, CATALOG));
        } else if roll < 0.85 {
            visit
                .pending
                .push_back(category_page(pick::<&str>(rng, CATEGORIES)));
        } else if visit.visitor.user_id.is_none() && roll < 0.89 {
            let user_id = format!("user-{}", self.next_user);
            self.next_user += 1;
            let visit = &mut self.visits[index];
            visit.pending.push_back(Planned::Page {
                path: "/login".into(),
                title: "Sign in".into(),
            });
            visit.pending.push_back(Planned::Identify { user_id });
        } else {
            visit.done = true;
        }
    }

    /// Checkout page, `identify` if the visitor is still anonymous, then "Order Completed".
    fn checkout(&mut self, index: usize) {
        let order_id = format!("ord-{:06}", self.next_order);
        self.next_order += 1;
        let needs_identity = self.visits[index].visitor.user_id.is_none();
        let new_user = needs_identity.then(|| {
            let user_id = format!("user-{}", self.next_user);
            self.next_user += 1;
            user_id
        });
        let visit = &mut self.visits[index];
        visit.pending.push_back(Planned::Page {
            path: "/checkout".into(),
            title: "Checkout".into(),
        });
        if let Some(user_id) = new_user {
            visit.pending.push_back(Planned::Identify { user_id });
        }
        let revenue_cents: u64 = visit.cart.iter().map(|(p, q)| p.price_cents * q).sum();
        let items: Vec<Value> = visit.cart.iter().map(|(p, _)| p.sku.into()).collect();
        let mut properties = Map::new();
        properties.insert("order_id".into(), order_id.into());
        properties.insert("revenue".into(), dollars(revenue_cents));
        properties.insert("currency".into(), "USD".into());
        properties.insert("items".into(), Value::Array(items));
        visit.pending.push_back(Planned::Track {
            name: "Order Completed",
            properties,
        });
        visit.cart.clear();
        visit.done = true;
    }

    /// Builds the event for `planned` as visit `index` reports it at `now`.
    fn emit(&mut self, index: usize, planned: Planned, now: TimestampMicros) -> Event {
        let event_id = uuid(&mut self.rng);
        // Browser to collector: tens of milliseconds.
        let received_at = now + self.rng.random_range(5_000..120_000);
        let visit = &mut self.visits[index];
        let (event_type, properties, campaign) = match planned {
            Planned::Page { path, title } => {
                let url = format!("https://{}.example.com{path}", visit.visitor.tenant);
                let referrer = match &visit.page {
                    Some(previous) => previous.url.clone(),
                    None => Some(visit.entrance.to_owned()).filter(|r| !r.is_empty()),
                };
                // The campaign is in the landing page's URL only.
                let campaign = if visit.page.is_none() {
                    visit.campaign.clone()
                } else {
                    None
                };
                visit.page = Some(PageContext {
                    url: Some(url),
                    path: Some(path),
                    title: Some(title),
                    referrer,
                    ..PageContext::default()
                });
                ("page".to_owned(), Map::new(), campaign)
            }
            Planned::Track { name, properties } => (format!("track:{name}"), properties, None),
            Planned::Identify { user_id } => {
                visit.visitor.user_id = Some(user_id);
                ("identify".to_owned(), Map::new(), None)
            }
        };
        let visitor = &visit.visitor;
        Event {
            event_id,
            tenant_id: visitor.tenant.to_owned(),
            anonymous_id: visitor.anonymous_id.clone(),
            user_id: visitor.user_id.clone(),
            session_id: visit.session_id.clone(),
            // The collector's default family, as events from real producers get at the edge
            // (the pipeline's rules refine it later).
            event_family: tributary_collector::edge::default_family(&event_type).to_owned(),
            event_type,
            ts: now,
            received_at,
            context: EventContext {
                // Track and identify events happen on the page the visitor is on.
                page: visit.page.clone(),
                user_agent: Some(visitor.user_agent.to_owned()),
                ip: Some(visitor.ip.clone()),
                locale: Some(visitor.locale.to_owned()),
                campaign,
                ..EventContext::default()
            },
            properties,
            enriched: None,
        }
    }
}

fn category_page(category: &str) -> Planned {
    let mut title = category.to_owned();
    if let Some(first) = title.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    Planned::Page {
        path: format!("/c/{category}"),
        title,
    }
}

fn view_product(visit: &mut Visit, product: &'static Product) {
    visit.last_product = Some(product);
    visit.pending.push_back(Planned::Page {
        path: format!("/products/{}", product.sku),
        title: product.name.into(),
    });
    let mut properties = Map::new();
    properties.insert("item_id".into(), product.sku.into());
    properties.insert("name".into(), product.name.into());
    properties.insert("category".into(), product.category.into());
    properties.insert("price".into(), dollars(product.price_cents));
    visit.pending.push_back(Planned::Track {
        name: "Product Viewed",
        properties,
    });
}

/// Cents as a JSON number of dollars (`12900` → `129.0`, `2999` → `29.99`).
fn dollars(cents: u64) -> Value {
    Number::from_f64(cents as f64 / 100.0).map_or(Value::Null, Value::Number)
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A random (version 4) UUID in its usual text form.
fn uuid(rng: &mut StdRng) -> String {
    let bits: u128 = rng.random();
    let bits = (bits & !(0xf_u128 << 76) | (0x4_u128 << 76)) & !(0x3_u128 << 62) | (0x2_u128 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const NOW: TimestampMicros = 1_735_732_800_000_000;

    #[test]
    fn same_seed_same_events() {
        let a = SampleTraffic::new(7).batch(500, NOW);
        let b = SampleTraffic::new(7).batch(500, NOW);
        assert_eq!(a, b);
        let c = SampleTraffic::new(8).batch(500, NOW);
        assert_ne!(a, c);
    }

    #[test]
    fn events_are_complete_and_round_trip_as_json() {
        for event in SampleTraffic::new(1).batch(2000, NOW) {
            assert!(!event.event_id.is_empty());
            assert!(!event.tenant_id.is_empty());
            assert!(!event.session_id.is_empty());
            assert!(event.received_at > event.ts);
            assert!(event.context.page.is_some(), "{event:?}");
            let json = serde_json::to_vec(&event).unwrap();
            let back: Event = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn the_funnel_is_all_there() {
        let events = SampleTraffic::new(2).batch(20_000, NOW);
        let mut types: HashMap<&str, usize> = HashMap::new();
        for event in &events {
            *types.entry(event.event_type.as_str()).or_default() += 1;
        }
        for expected in [
            "page",
            "identify",
            "track:Product Viewed",
            "track:Product Added",
            "track:Order Completed",
        ] {
            assert!(types.get(expected).is_some_and(|n| *n > 0), "{types:?}");
        }
        // Pages outnumber orders, as in any shop.
        assert!(
            types["page"] > 10 * types["track:Order Completed"],
            "{types:?}"
        );

        for event in &events {
            match event.event_type.as_str() {
                "track:Product Viewed" | "track:Product Added" => {
                    assert!(event.properties["item_id"].is_string());
                }
                "track:Order Completed" => {
                    assert!(event.properties["order_id"].is_string());
                    assert!(
                        event.properties["revenue"]
                            .as_f64()
                            .is_some_and(|r| r > 0.0)
                    );
                    assert!(event.user_id.is_some(), "orders are placed by known users");
                }
                "identify" => assert!(event.user_id.is_some()),
                _ => {}
            }
        }
    }

    #[test]
    fn anonymous_visitors_later_identify_within_their_session() {
        let events = SampleTraffic::new(3).batch(20_000, NOW);
        let mut seen_anonymous: HashMap<&str, bool> = HashMap::new();
        let mut stitched = 0;
        for event in &events {
            match &event.user_id {
                None => {
                    seen_anonymous.insert(&event.session_id, true);
                }
                Some(_) if seen_anonymous.contains_key(event.session_id.as_str()) => {
                    stitched += 1;
                }
                Some(_) => {}
            }
        }
        assert!(stitched > 0);
    }

    #[test]
    fn returning_visitors_keep_their_cookie() {
        let events = SampleTraffic::new(4).batch(30_000, NOW);
        let mut sessions_per_visitor: HashMap<&str, std::collections::HashSet<&str>> =
            HashMap::new();
        for event in &events {
            sessions_per_visitor
                .entry(&event.anonymous_id)
                .or_default()
                .insert(&event.session_id);
        }
        assert!(sessions_per_visitor.values().any(|s| s.len() > 1));
    }

    #[test]
    fn sessions_stay_on_one_partition_key() {
        let events = SampleTraffic::new(5).batch(5000, NOW);
        let mut keys: HashMap<&str, String> = HashMap::new();
        for event in &events {
            let key = event.partition_key();
            let first = keys.entry(&event.session_id).or_insert_with(|| key.clone());
            assert_eq!(*first, key);
        }
    }

    #[test]
    fn uuids_look_like_v4() {
        let mut rng = StdRng::seed_from_u64(0);
        let id = uuid(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}
