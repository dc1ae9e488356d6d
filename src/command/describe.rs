//! A point's write rules in one line, for `ferrule check`.

/// The write rules of a point for `ferrule check`: `writable 0..90 step 0.5 rate 1s confirm 10s
/// enum off=0,auto=1`; `None` when it is not writable.
pub fn describe(p: &crate::config::Point) -> Option<String> {
    use crate::config::{show_duration, Writable};
    let Writable::Yes { min, max } = p.writable else {
        return None;
    };
    let mut out = String::from("writable");
    match (min, max) {
        (None, None) => {}
        (lo, hi) => out.push_str(&format!(
            " {}..{}",
            lo.map_or(String::new(), |v| v.to_string()),
            hi.map_or(String::new(), |v| v.to_string())
        )),
    }
    if let Some(step) = p.write.step {
        out.push_str(&format!(" step {step}"));
    }
    if let Some(period) = p.write.rate_limit {
        out.push_str(&format!(" rate 1/{}", show_duration(period)));
    }
    if let Some(period) = p.write.confirm {
        out.push_str(&format!(" confirm {}", show_duration(period)));
    }
    if !p.names.is_empty() {
        let names: Vec<String> = p.names.iter().map(|(n, v)| format!("{n}={v}")).collect();
        out.push_str(&format!(" enum {}", names.join(",")));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::describe;
    use crate::config::{DataType, Point, RegisterKind, Writable};

    #[test]
    fn check_describes_the_write_rules() {
        let mut p = Point::new("sp", RegisterKind::Holding, 1, DataType::U16);
        assert_eq!(describe(&p), None);
        p.writable = Writable::Yes {
            min: None,
            max: None,
        };
        assert_eq!(describe(&p).as_deref(), Some("writable"));
        p.writable = Writable::Yes {
            min: Some(0.0),
            max: None,
        };
        p.write.step = Some(0.5);
        p.write.rate_limit = Some(Duration::from_secs(1));
        p.write.confirm = Some(Duration::from_secs(10));
        p.names = vec![("off".into(), 0.0), ("on".into(), 1.0)];
        assert_eq!(
            describe(&p).as_deref(),
            Some("writable 0.. step 0.5 rate 1/1s confirm 10s enum off=0,on=1")
        );
    }
}
