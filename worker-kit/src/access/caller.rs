//! The caller of a message, read off its `user_id` property, and how retry and parked
//! copies carry the original caller along.

use lapin::types::{AMQPValue, FieldTable};

use crate::wire::delivery::RETRY_COUNT_HEADER;

/// Header in which a retry or parked copy carries the user of the message it copies.
///
/// A copy is published by the consuming service, so its `user_id` is the service's own;
/// this header says who sent the original. It is believed only on a message whose
/// (broker-checked) `user_id` is the consuming service's own user: nobody else can publish
/// as that user, so nobody else can make the kit believe the header.
pub const ORIGINAL_USER_HEADER: &str = "x-original-user-id";

/// Who sent a message, as far as the broker vouches for it ([`Meta::caller`](crate::Meta)).
///
/// RabbitMQ refuses a message whose `user_id` is not the user its connection logged in
/// as, so a message that carries one comes from that user. Two exceptions, which the kit
/// cannot see: a user with the `impersonator` tag may set any `user_id`, and a federation
/// link may be configured to pass `user_id` on from another broker. Give neither to
/// anything you do not trust as every one of your services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Caller {
    /// The broker user that sent the message (for a retry of a work message, the user that
    /// sent the first attempt); `None` when the message had no `user_id` (the Python seed
    /// sends none).
    pub user: Option<String>,
    /// Whether `user` is vouched for by the broker. Always the case for a user read off a
    /// delivery; a [`Caller::claimed`] built by hand in a test is not, and no allow list
    /// admits it.
    pub verified: bool,
}

impl Caller {
    /// A message without `user_id`.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A caller the broker vouched for: what a handler sees for a message whose `user_id`
    /// is `user` (use it with `testing::TestClient`, behind worker-kit's `testing` feature,
    /// to call as a service).
    pub fn verified(user: impl Into<String>) -> Self {
        Self {
            user: Some(user.into()),
            verified: true,
        }
    }

    /// A caller nobody vouched for (tests: to show that allow lists ignore it).
    pub fn claimed(user: impl Into<String>) -> Self {
        Self {
            user: Some(user.into()),
            verified: false,
        }
    }

    /// The user, when the broker vouched for it.
    pub fn verified_user(&self) -> Option<&str> {
        self.user.as_deref().filter(|_| self.verified)
    }
}

/// The caller of a delivery with `user_id` and `headers`, consumed by a process logged in
/// as `own_user`.
///
/// A message from the process's own user is one of its own copies (or something it
/// published itself): for a copy, the original caller is in [`ORIGINAL_USER_HEADER`], and a
/// copy without it (it carries `x-retry-count`) was a copy of an anonymous message. From
/// any other user the header is ignored: it is only text anyone may write.
pub(crate) fn resolve(user_id: Option<&str>, headers: &FieldTable, own_user: &str) -> Caller {
    let Some(user) = user_id else {
        return Caller::anonymous();
    };
    if user != own_user {
        return Caller::verified(user);
    }
    match headers.inner().get(ORIGINAL_USER_HEADER) {
        Some(AMQPValue::LongString(s)) => match std::str::from_utf8(s.as_bytes()) {
            Ok(original) => Caller::verified(original),
            Err(_) => Caller::anonymous(),
        },
        Some(AMQPValue::ShortString(s)) => Caller::verified(s.as_str()),
        // Our own copy of a message that had no user_id.
        _ if headers.contains_key(RETRY_COUNT_HEADER) => Caller::anonymous(),
        _ => Caller::verified(user),
    }
}

/// What a copy of a message from `caller` carries in [`ORIGINAL_USER_HEADER`]: the user,
/// or nothing for an anonymous original (the header is then removed from the copy, so that
/// whatever an anonymous sender wrote there is not vouched for by the copy's `user_id`).
pub(crate) fn original_user_header(caller: &Caller) -> Option<AMQPValue> {
    caller
        .verified_user()
        .map(|u| AMQPValue::LongString(u.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn forged() -> FieldTable {
        headers(&[(
            ORIGINAL_USER_HEADER,
            AMQPValue::LongString("billing".into()),
        )])
    }

    #[test]
    fn no_user_id_is_anonymous_whatever_the_headers_say() {
        assert_eq!(resolve(None, &forged(), "example"), Caller::anonymous());
    }

    #[test]
    fn another_user_is_the_caller_and_its_header_is_ignored() {
        let c = resolve(Some("greeter"), &forged(), "example");
        assert_eq!(c, Caller::verified("greeter"));
    }

    #[test]
    fn own_copies_carry_the_original_caller() {
        assert_eq!(
            resolve(Some("example"), &forged(), "example"),
            Caller::verified("billing")
        );
        let anonymous_copy = headers(&[(RETRY_COUNT_HEADER, AMQPValue::LongLongInt(1))]);
        assert_eq!(
            resolve(Some("example"), &anonymous_copy, "example"),
            Caller::anonymous()
        );
        assert_eq!(
            resolve(Some("example"), &FieldTable::default(), "example"),
            Caller::verified("example")
        );
    }

    #[test]
    fn copies_name_only_verified_callers() {
        assert!(original_user_header(&Caller::anonymous()).is_none());
        assert!(original_user_header(&Caller::claimed("x")).is_none());
        assert_eq!(
            original_user_header(&Caller::verified("greeter")),
            Some(AMQPValue::LongString("greeter".into()))
        );
    }
}
