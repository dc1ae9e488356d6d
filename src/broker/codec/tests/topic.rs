//! Topic name and filter rules, `$share/` parsing.

use crate::broker::codec::topic::{parse_filter, validate_name, Filter, TopicError};

#[test]
fn valid_topic_names() {
    for name in [
        "a",
        "a/b",
        "/",
        "//",
        "a//b",
        "$SYS/broker/load",
        "caf\u{e9}/€",
        " ",
    ] {
        assert_eq!(validate_name(name), Ok(()), "{name:?}");
    }
    assert_eq!(validate_name(&"x".repeat(65_535)), Ok(()));
}

#[test]
fn invalid_topic_names() {
    let rows = [
        ("", TopicError::Empty),
        ("a/+", TopicError::WildcardInName('+')),
        ("a/#", TopicError::WildcardInName('#')),
        ("a+b", TopicError::WildcardInName('+')),
        ("#", TopicError::WildcardInName('#')),
        ("a\0b", TopicError::Nul),
    ];
    for (name, error) in rows {
        assert_eq!(validate_name(name), Err(error), "{name:?}");
    }
    assert_eq!(
        validate_name(&"x".repeat(65_536)),
        Err(TopicError::TooLong(65_536))
    );
    assert_eq!(
        TopicError::WildcardInName('+').to_string(),
        "topic name contains the wildcard '+'"
    );
}

#[test]
fn valid_filters() {
    for filter in [
        "a",
        "#",
        "+",
        "a/#",
        "a/+/b",
        "+/+",
        "/#",
        "+/",
        "a//+",
        "$SYS/#",
        "sport/+/player1",
    ] {
        let parsed = parse_filter(filter);
        assert_eq!(
            parsed,
            Ok(Filter {
                share_group: None,
                filter
            }),
            "{filter:?}"
        );
    }
}

#[test]
fn invalid_filters() {
    let rows = [
        ("", TopicError::Empty),
        ("a#", TopicError::MultiLevelWildcardMisplaced),
        ("#/a", TopicError::MultiLevelWildcardMisplaced),
        ("a/#/b", TopicError::MultiLevelWildcardMisplaced),
        ("a/b#", TopicError::MultiLevelWildcardMisplaced),
        ("##", TopicError::MultiLevelWildcardMisplaced),
        ("a+", TopicError::SingleLevelWildcardMisplaced),
        ("a/+b/c", TopicError::SingleLevelWildcardMisplaced),
        ("++", TopicError::SingleLevelWildcardMisplaced),
        ("a/\0", TopicError::Nul),
    ];
    for (filter, error) in rows {
        assert_eq!(parse_filter(filter), Err(error), "{filter:?}");
    }
    assert_eq!(
        parse_filter(&"+".repeat(65_536)),
        Err(TopicError::TooLong(65_536))
    );
}

#[test]
fn shared_subscriptions() {
    let rows = [
        ("$share/g/a/b", "g", "a/b"),
        ("$share/group-1/#", "group-1", "#"),
        ("$share/g/+/x", "g", "+/x"),
        ("$share/g//", "g", "/"),
        ("$share/g/$share/h/t", "g", "$share/h/t"),
    ];
    for (text, group, filter) in rows {
        let expected = Filter {
            share_group: Some(group),
            filter,
        };
        assert_eq!(parse_filter(text), Ok(expected), "{text:?}");
    }
    // "$share" without a slash, or another $ prefix, is an ordinary filter
    for plain in ["$share", "$shared/g/t", "$SHARE/g/t"] {
        assert_eq!(
            parse_filter(plain).map(|f| f.share_group),
            Ok(None),
            "{plain:?}"
        );
    }
}

#[test]
fn invalid_shared_subscriptions() {
    let rows = [
        ("$share/", TopicError::EmptyShareGroup),
        ("$share//t", TopicError::EmptyShareGroup),
        ("$share/g", TopicError::ShareWithoutFilter),
        ("$share/g/", TopicError::ShareWithoutFilter),
        ("$share/g+/t", TopicError::WildcardInShareGroup('+')),
        ("$share/#/t", TopicError::WildcardInShareGroup('#')),
        ("$share/g/a#", TopicError::MultiLevelWildcardMisplaced),
        ("$share/g/a+", TopicError::SingleLevelWildcardMisplaced),
    ];
    for (filter, error) in rows {
        assert_eq!(parse_filter(filter), Err(error), "{filter:?}");
    }
    assert_eq!(
        TopicError::WildcardInShareGroup('+').to_string(),
        "shared subscription group contains '+'"
    );
}
