//! The page's assets, embedded in the binary (gateways are often offline: no CDN, no external
//! file). Invariant: together well under 150 KB (a test checks it).

/// The HTML shell.
pub const INDEX_HTML: &str = include_str!("page/index.html");
/// The stylesheet.
pub const STYLE_CSS: &str = include_str!("page/style.css");
/// The script: one `EventSource`, DOM updates, login and write forms, raw registers.
pub const APP_JS: &str = include_str!("page/app.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_small_and_self_contained() {
        let total = INDEX_HTML.len() + STYLE_CSS.len() + APP_JS.len();
        assert!(total < 150 * 1024, "{total} bytes");
        for asset in [INDEX_HTML, STYLE_CSS, APP_JS] {
            assert!(
                !asset.contains("http://") && !asset.contains("https://"),
                "external URL"
            );
        }
    }
}
