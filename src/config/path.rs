//! A place in the config document and a problem found there, before it is located in the text:
//! the path ([`Seg`]s, rendered `devices[1].points[3].kind`), which token of the node ([`At`])
//! and the message ([`Problem`]). Shared by the decoder that records problems and `locate.rs`
//! that turns them into lines and columns; it depends on neither.

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// The value of a mapping key.
    Key(String),
    /// An element of a list (0-based).
    Index(usize),
}

/// Renders a path as shown in messages: `devices[1].points[3].kind` (empty for the root).
pub fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Which token of the node at a path a problem points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The value itself.
    Node,
    /// The key of the last path segment, in its `nth` occurrence (0 = first; more only for
    /// duplicate keys).
    Key { nth: usize },
}

/// A problem found while decoding or validating, not yet located in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: Vec<Seg>,
    pub at: At,
    pub message: String,
}
