//! One generated case: a family, a target, properties and a body, made from the run's seed
//! and the case's number alone (so `--case K` makes the same case again).

use std::fmt::Write as _;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

use crate::bodies::{self, Body};
use crate::props;
use crate::rng::Rng;
use crate::targets::{self, Target};

/// A family of cases; each can be switched off (`--off NAME`) or run alone (`--only NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Family {
    /// A typed call or task of the kind a real caller makes, interleaved with the rest:
    /// it must be answered within its deadline.
    Ordinary,
    /// Every property, with every field-table value type in the headers.
    Properties,
    /// `x-deadline`, `x-timeout-ms`, `expiration` and `timestamp` at their edges.
    Deadlines,
    /// `reply_to` of every shape.
    ReplyTo,
    /// AMQP `type` values.
    Type,
    /// `user_id` of the publisher and of other users (the broker refuses those).
    UserId,
    /// Bodies: wrong types, deep and wide JSON, invalid UTF-8, truncated gzip, odd numbers.
    Bodies,
    /// Events from a user who does not own their name, through the exchange and straight
    /// into the subscription queues.
    ForgedEvents,
    /// Properties and bodies at and around `frame_max`, bodies around `MAX_MESSAGE_BYTES`.
    Sizes,
    /// Bodies at and one byte over the broker's `max_message_size` (two cases per 1,000).
    BrokerMax,
    /// Headers sized so the delivered content-header frame is a few bytes over `frame_max`
    /// (issue 25 defect 1).
    FrameHeader,
    /// Bursts of 16 gzip bombs of 8 KiB that inflate to 8 MiB each (issue 25 defect 5).
    GzipBomb,
}

impl Family {
    pub(crate) const ALL: [Family; 12] = [
        Family::Ordinary,
        Family::Properties,
        Family::Deadlines,
        Family::ReplyTo,
        Family::Type,
        Family::UserId,
        Family::Bodies,
        Family::ForgedEvents,
        Family::Sizes,
        Family::BrokerMax,
        Family::FrameHeader,
        Family::GzipBomb,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Ordinary => "ordinary",
            Family::Properties => "properties",
            Family::Deadlines => "deadlines",
            Family::ReplyTo => "reply-to",
            Family::Type => "type",
            Family::UserId => "user-id",
            Family::Bodies => "bodies",
            Family::ForgedEvents => "forged-events",
            Family::Sizes => "sizes",
            Family::BrokerMax => "broker-max",
            Family::FrameHeader => "frame-header",
            Family::GzipBomb => "gzip-bomb",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Family> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// How often the family is drawn, out of the sum over the families switched on
    /// (`BrokerMax` is placed by case number instead).
    fn weight(self) -> usize {
        match self {
            Family::Ordinary => 8,
            Family::Properties | Family::Bodies => 16,
            Family::Deadlines => 12,
            Family::ReplyTo | Family::Type | Family::UserId | Family::ForgedEvents => 8,
            Family::Sizes => 6,
            Family::FrameHeader => 1,
            Family::GzipBomb => 1,
            Family::BrokerMax => 0,
        }
    }
}

/// A typed call or task, as a real caller sends it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ordinary {
    Hello,
    Greet,
    Dictionary,
    CreateItem,
    ListItems,
    Freshness,
    Task,
}

/// What the generator knows of a case before sending it.
pub(crate) struct Case {
    pub(crate) index: usize,
    pub(crate) family: Family,
    pub(crate) what: What,
}

pub(crate) enum What {
    Ordinary(Ordinary),
    Message(Box<Message>),
}

/// One hostile message (sent `repeat` times).
pub(crate) struct Message {
    pub(crate) target: Target,
    pub(crate) props: BasicProperties,
    pub(crate) body: Body,
    pub(crate) repeat: usize,
}

impl Message {
    /// Whether the broker may refuse it (closing the publisher's channel): such a message
    /// is published with a wait for the broker's confirm, the others without.
    pub(crate) fn may_be_refused(&self, own_user: &str) -> bool {
        let p = &self.props;
        p.user_id().as_ref().is_some_and(|u| u.as_str() != own_user)
            || p.expiration().is_some()
            || p.reply_to()
                .as_ref()
                .is_some_and(|r| r.as_str().starts_with("amq.rabbitmq.reply-to"))
            || p.delivery_mode().is_some_and(|m| !(1..=2).contains(&m))
            || self.body.bytes.len() > 1024 * 1024
            || encoded_size(p) > worker_kit::wire::headers::MAX_PROPERTIES_BYTES - 256
    }
}

/// What the generator needs of the run to make a case.
pub(crate) struct Context {
    pub(crate) seed: u64,
    /// The families switched on.
    pub(crate) families: Vec<Family>,
    /// The attacker's own reply queue.
    pub(crate) reply_queue: String,
    /// The attacker's broker user.
    pub(crate) user: String,
    /// Other broker users (the services' own).
    pub(crate) others: Vec<String>,
    /// The broker's `max_message_size`.
    pub(crate) broker_max_message: usize,
    /// The services' `MAX_MESSAGE_BYTES`.
    pub(crate) max_message_bytes: usize,
}

/// Makes case `index`.
pub(crate) fn make(cx: &Context, index: usize) -> Case {
    let mut rng = Rng::for_case(cx.seed, index);
    let family = if cx.families.contains(&Family::BrokerMax) && matches!(index % 1000, 500 | 501) {
        Family::BrokerMax
    } else {
        let weighted: Vec<Family> = cx
            .families
            .iter()
            .copied()
            .filter(|f| f.weight() > 0)
            .collect();
        let total: usize = weighted.iter().map(|f| f.weight()).sum();
        let mut at = rng.below(total.max(1));
        *weighted
            .iter()
            .find(|f| {
                if at < f.weight() {
                    return true;
                }
                at -= f.weight();
                false
            })
            .unwrap_or(&Family::Ordinary)
    };
    let what = match family {
        Family::Ordinary => What::Ordinary(*rng.pick(&[
            Ordinary::Hello,
            Ordinary::Greet,
            Ordinary::Dictionary,
            Ordinary::CreateItem,
            Ordinary::ListItems,
            Ordinary::Freshness,
            Ordinary::Task,
        ])),
        _ => What::Message(Box::new(message(cx, family, index, &mut rng))),
    };
    Case {
        index,
        family,
        what,
    }
}

fn headers(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(k.into(), v);
    }
    t
}

/// A request as a caller would send it, before the family changes a part of it.
fn base(cx: &Context, index: usize) -> BasicProperties {
    BasicProperties::default()
        .with_reply_to(cx.reply_queue.as_str().into())
        .with_correlation_id(format!("h{index}").into())
}

fn message(cx: &Context, family: Family, index: usize, rng: &mut Rng) -> Message {
    let target = targets::any(rng);
    let body = if family == Family::Bodies {
        bodies::any(rng)
    } else {
        envelope_of_target(&target)
    };
    let mut m = Message {
        target,
        props: base(cx, index),
        body,
        repeat: 1,
    };
    match family {
        Family::Properties => m.props = props::any_properties(rng, &cx.reply_queue, &cx.user),
        Family::Deadlines => {
            let mut pairs = Vec::new();
            if rng.one_in(2) {
                pairs.push(("x-deadline", props::deadline_value(rng)));
            }
            if rng.one_in(2) {
                pairs.push(("x-timeout-ms", props::deadline_value(rng)));
            }
            m.props = m.props.with_headers(headers(pairs));
            if rng.one_in(2) {
                m.props = m.props.with_expiration(props::expiration(rng));
            }
            if rng.one_in(2) {
                m.props = m.props.with_timestamp(*rng.pick(&[
                    0,
                    u64::MAX,
                    4_102_444_800,
                    4_102_444_800_000,
                ]));
            }
            m.body = envelope_of_target(&m.target);
        }
        Family::ReplyTo => {
            let mut p = BasicProperties::default().with_correlation_id(format!("h{index}").into());
            if let Some(r) = props::reply_to(rng, &cx.reply_queue) {
                p = p.with_reply_to(r);
            }
            m.props = p;
            m.body = envelope_of_target(&m.target);
        }
        Family::Type => {
            m.props = m.props.with_type(props::kind(rng));
            m.body = envelope_of_target(&m.target);
        }
        Family::UserId => {
            let user = if rng.one_in(2) {
                cx.user.clone()
            } else {
                rng.pick(&cx.others).clone()
            };
            m.props = m.props.with_user_id(user.into());
            m.body = envelope_of_target(&m.target);
        }
        Family::Bodies => {}
        Family::ForgedEvents => forged_event(cx, rng, &mut m),
        Family::Sizes => sizes(cx, rng, &mut m),
        Family::BrokerMax => {
            let len = cx.broker_max_message + index % 1000 - 500;
            m.body = Body {
                bytes: bodies::sized(len),
                recipe: format!(
                    "{len} bytes of JSON (the broker's max_message_size{})",
                    if len > cx.broker_max_message {
                        " + 1"
                    } else {
                        ""
                    }
                ),
            };
        }
        Family::FrameHeader => {
            // Published properties of P bytes make a content-header frame of P + 20 bytes:
            // the broker takes P + 12 <= frame_max, lapin reads only P + 20 <= frame_max.
            let over = rng.between(1, 8);
            let target_len = worker_kit::wire::headers::MAX_PROPERTIES_BYTES + over;
            m.props = fit_properties(m.props, target_len);
            m.body = envelope_of_target(&m.target);
        }
        Family::GzipBomb => {
            m.target = targets::Target::Rpc(rng.choose(&["will-error"]));
            m.body = Body {
                bytes: bodies::bomb().to_vec(),
                recipe: "gzip of {\"data\": [0, 0, …]} with 4,000,000 zeros (8 MiB decoded)".into(),
            };
            m.repeat = 16;
        }
        Family::Ordinary => unreachable!("ordinary cases are calls"),
    }
    m
}

/// A plausible body for the target: the envelope of something its contract might take.
fn envelope_of_target(target: &Target) -> Body {
    let data = match target {
        Target::Rpc("example.items.create") => r#"{"name": "h", "price_cents": 1, "tags": []}"#,
        Target::Rpc(r) if r.starts_with("catalog.items.search") => r#"{"text": "h"}"#,
        Target::Rpc(r) if r.ends_with(".get") => r#"{"id": 1}"#,
        Target::Rpc("greeter.greet") => r#"{"name": "h"}"#,
        Target::Work(_) => r#""work""#,
        Target::Event(_) | Target::SubscriptionQueue(_) => r#"{"id": 1}"#,
        Target::Rpc(_) => "{}",
    };
    Body {
        bytes: e2e::gzip(format!(r#"{{"data": {data}}}"#).as_bytes()),
        recipe: format!("gzip of {{\"data\": {data}}}"),
    }
}

/// A copy of a real event, published by a user who does not own its name.
fn forged_event(cx: &Context, rng: &mut Rng, m: &mut Message) {
    let name = *rng.pick(&targets::EVENTS);
    m.target = if rng.one_in(3) {
        Target::SubscriptionQueue(worker_kit::events::subscription_queue(
            catalog::SERVICE,
            name,
        ))
    } else {
        Target::Event(name)
    };
    let seq = *rng.pick(&[i64::MAX, i64::MIN, 0, -1, 1 << 53]);
    let id = rng.between(1, 50);
    let item = format!(
        r#"{{"id": {id}, "name": "forged", "price_cents": 1, "tags": ["forged"], "created_at": "2026-01-01T00:00:00Z", "updated_at": "2100-01-01T00:00:00Z"}}"#
    );
    m.body = Body {
        bytes: format!(r#"{{"data": {item}}}"#).into_bytes(),
        recipe: format!("an item {id} event body, x-outbox-seq {seq}"),
    };
    let mut p = BasicProperties::default()
        .with_message_id(
            uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64())
                .to_string()
                .into(),
        )
        .with_delivery_mode(2)
        .with_headers(headers(vec![
            ("x-outbox-seq", AMQPValue::LongLongInt(seq)),
            (
                "x-original-user-id",
                AMQPValue::LongString(rng.pick(&cx.others).as_str().into()),
            ),
        ]));
    match rng.below(3) {
        0 => p = p.with_type(name.into()),
        1 => p = p.with_type((*rng.pick(&targets::EVENTS)).into()),
        _ => {}
    }
    if rng.one_in(2) {
        p = p.with_user_id(cx.user.as_str().into());
    }
    m.props = p;
}

/// Properties and bodies at the frame's edge and the services' size cap.
fn sizes(cx: &Context, rng: &mut Rng, m: &mut Message) {
    let frame = worker_kit::wire::headers::FRAME_MAX;
    match rng.below(4) {
        0 => {
            // Properties that fit the frame as delivered, up to the last byte.
            let len = worker_kit::wire::headers::MAX_PROPERTIES_BYTES - rng.below(64);
            m.props = fit_properties(std::mem::take(&mut m.props), len);
            m.body = envelope_of_target(&m.target);
        }
        1 => {
            let len = frame - 16 + rng.below(32);
            m.body = Body {
                bytes: bodies::sized(len),
                recipe: format!("{len} bytes of JSON (around frame_max)"),
            };
        }
        2 => {
            let len = cx.max_message_bytes - 1 + rng.below(3);
            m.body = Body {
                bytes: bodies::sized(len),
                recipe: format!("{len} bytes of JSON (around MAX_MESSAGE_BYTES)"),
            };
        }
        _ => {
            // A traceparent or tracestate as large as the frame allows.
            let name = *rng.pick(&["traceparent", "tracestate"]);
            let props = std::mem::take(&mut m.props);
            m.props = fit_properties_with(
                props,
                name,
                worker_kit::wire::headers::MAX_PROPERTIES_BYTES - rng.below(16),
            );
            m.body = envelope_of_target(&m.target);
        }
    }
}

/// `props` with an `x-pad` header sized so their encoding is `len` bytes.
pub(crate) fn fit_properties(props: BasicProperties, len: usize) -> BasicProperties {
    fit_properties_with(props, "x-pad", len)
}

fn fit_properties_with(props: BasicProperties, header: &str, len: usize) -> BasicProperties {
    let mut table = props.headers().clone().unwrap_or_default();
    table.insert(
        header.into(),
        AMQPValue::LongString(Vec::<u8>::new().into()),
    );
    let empty = encoded_size(&props.clone().with_headers(table.clone()));
    let pad = len.saturating_sub(empty);
    table.insert(header.into(), AMQPValue::LongString(vec![b'p'; pad].into()));
    let out = props.with_headers(table);
    debug_assert_eq!(encoded_size(&out), len.max(empty));
    out
}

/// The encoded size of `props` as the content-header frame carries them.
pub(crate) fn encoded_size(props: &BasicProperties) -> usize {
    cookie_factory::gen_simple(lapin::protocol::basic::gen_properties(props), Vec::new())
        .map_or(usize::MAX, |v| v.len())
}

/// Every field of the case, long values shortened to their length: what a failure prints.
pub(crate) fn describe(case: &Case, seed: u64) -> String {
    let mut s = format!(
        "case {} of seed {seed} (replay: scripts/pj test hostile --seed {seed} --case {}), family {}\n",
        case.index,
        case.index,
        case.family.name()
    );
    match &case.what {
        What::Ordinary(op) => {
            let _ = writeln!(s, "  an ordinary {op:?}");
        }
        What::Message(m) => {
            let (exchange, key) = m.target.address();
            let _ = writeln!(
                s,
                "  target {:?}: exchange {exchange:?}, routing key {key:?}",
                m.target
            );
            let _ = writeln!(
                s,
                "  properties ({} bytes encoded):",
                encoded_size(&m.props)
            );
            for line in shorten(&format!("{:#?}", m.props)).lines() {
                let _ = writeln!(s, "    {line}");
            }
            let _ = writeln!(
                s,
                "  body: {} ({} bytes){}",
                m.body.recipe,
                m.body.bytes.len(),
                if m.repeat > 1 {
                    format!(", sent {} times", m.repeat)
                } else {
                    String::new()
                }
            );
        }
    }
    s
}

/// Runs of one repeated character longer than 64 written as `<N × 'c'>`.
fn shorten(text: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let mut j = i;
        while j < chars.len() && chars[j] == chars[i] {
            j += 1;
        }
        if j - i > 64 {
            let _ = write!(out, "<{} × {:?}>", j - i, chars[i]);
        } else {
            out.extend(&chars[i..j]);
        }
        i = j;
    }
    out
}
