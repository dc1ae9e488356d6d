//! Topic rules (§4.7, §4.8.2) as pure functions: is this a valid topic name, a valid topic
//! filter, a shared subscription — the engine decides the answer (a SUBACK 0x8F for one
//! filter, a DISCONNECT 0x90 for a PUBLISH, …). Matching is not done here.
//!
//! Invariants:
//! - a valid topic name is non-empty, at most 65,535 bytes, without `+`, `#` or U+0000;
//! - a valid topic filter is non-empty, at most 65,535 bytes, without U+0000, `+` only as a
//!   whole level and `#` only as the whole last level;
//! - `$share/{group}/{filter}` is a shared subscription: the group is non-empty without `/`,
//!   `+` or `#`, the filter a valid non-empty filter; [`Filter::filter`] is then the part
//!   after the group, the one to match topics against;
//! - a topic starting with `$` is valid here; whether wildcards match it is the matcher's
//!   business.

/// Why a topic name or filter is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is {0} bytes, longer than 65,535")]
    TooLong(usize),
    #[error("topic contains U+0000")]
    Nul,
    #[error("topic name contains the wildcard '{0}'")]
    WildcardInName(char),
    #[error("'#' must be the whole last level of a topic filter")]
    MultiLevelWildcardMisplaced,
    #[error("'+' must be a whole level of a topic filter")]
    SingleLevelWildcardMisplaced,
    #[error("shared subscription group is empty")]
    EmptyShareGroup,
    #[error("shared subscription group contains '{0}'")]
    WildcardInShareGroup(char),
    #[error("shared subscription has no topic filter after its group")]
    ShareWithoutFilter,
}

/// A parsed topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter<'a> {
    /// The group of a `$share/{group}/{filter}` subscription.
    pub share_group: Option<&'a str>,
    /// The filter to match topics against (without `$share/{group}/`).
    pub filter: &'a str,
}

const SHARE_PREFIX: &str = "$share/";

fn check_length(topic: &str) -> Result<(), TopicError> {
    match topic.len() {
        0 => Err(TopicError::Empty),
        len if len > usize::from(u16::MAX) => Err(TopicError::TooLong(len)),
        _ => Ok(()),
    }
}

/// Checks a topic name (a PUBLISH or will topic, a response topic).
pub fn validate_name(topic: &str) -> Result<(), TopicError> {
    check_length(topic)?;
    match topic.bytes().find(|b| matches!(b, b'+' | b'#' | 0)) {
        Some(0) => Err(TopicError::Nul),
        Some(wildcard) => Err(TopicError::WildcardInName(char::from(wildcard))),
        None => Ok(()),
    }
}

/// Checks a topic filter (SUBSCRIBE, UNSUBSCRIBE) and splits off a shared subscription's group.
pub fn parse_filter(filter: &str) -> Result<Filter<'_>, TopicError> {
    check_length(filter)?;
    let Some(shared) = filter.strip_prefix(SHARE_PREFIX) else {
        check_filter(filter)?;
        return Ok(Filter {
            share_group: None,
            filter,
        });
    };
    let Some((group, inner)) = shared.split_once('/') else {
        return Err(match shared.is_empty() {
            true => TopicError::EmptyShareGroup,
            false => TopicError::ShareWithoutFilter,
        });
    };
    if group.is_empty() {
        return Err(TopicError::EmptyShareGroup);
    }
    if let Some(wildcard) = group.bytes().find(|b| matches!(b, b'+' | b'#')) {
        return Err(TopicError::WildcardInShareGroup(char::from(wildcard)));
    }
    if inner.is_empty() {
        return Err(TopicError::ShareWithoutFilter);
    }
    check_filter(inner)?;
    Ok(Filter {
        share_group: Some(group),
        filter: inner,
    })
}

/// Wildcard placement and U+0000 in a non-empty filter.
fn check_filter(filter: &str) -> Result<(), TopicError> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.as_bytes().contains(&0) {
            return Err(TopicError::Nul);
        }
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcardMisplaced);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcardMisplaced);
        }
    }
    Ok(())
}
