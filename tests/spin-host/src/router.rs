//! Matches a request path to a component the way Spin's HTTP trigger does, and computes the
//! `spin-*` request headers Spin adds.
//!
//! Routes: exact (`/a/b`), trailing wildcard (`/a/...`), named segments (`/a/:id`). The most
//! specific route wins: at the first differing segment a literal beats `:name`, which beats the
//! wildcard; an exact route beats a wildcard ending at the same place.

use anyhow::{bail, Result};
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Named(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    /// As written in the manifest.
    pub raw: String,
    /// With one trailing `/` removed (Spin's "based" route with base `/`).
    pub based: String,
    pub component: String,
    pub wildcard: bool,
    segments: Vec<Segment>,
}

impl Route {
    fn parse(raw: &str, component: &str) -> Result<Route> {
        let absolute = if raw.starts_with('/') {
            raw.to_owned()
        } else {
            format!("/{raw}")
        };
        let based = absolute.strip_suffix('/').unwrap_or(&absolute).to_owned();
        let (prefix, wildcard) = match based.strip_suffix("/...") {
            Some(p) => (p, true),
            None => (based.as_str(), false),
        };
        let mut segments = Vec::new();
        for s in prefix.split('/').filter(|s| !s.is_empty()) {
            if s == "..." {
                bail!("route `{raw}`: `...` is only allowed at the end");
            }
            segments.push(match s.strip_prefix(':') {
                Some(name) if !name.is_empty() => Segment::Named(name.to_owned()),
                Some(_) => bail!("route `{raw}`: empty segment name"),
                None => Segment::Literal(s.to_owned()),
            });
        }
        Ok(Route {
            raw: raw.to_owned(),
            based,
            component: component.to_owned(),
            wildcard,
            segments,
        })
    }

    /// The route as `spin up` prints it: `/a/b`, or `/a (wildcard)`.
    pub fn display(&self) -> String {
        if !self.wildcard {
            return if self.based.is_empty() {
                "/".into()
            } else {
                self.based.clone()
            };
        }
        let prefix = self.based.strip_suffix("/...").unwrap_or(&self.based);
        format!(
            "{} (wildcard)",
            if prefix.is_empty() { "/" } else { prefix }
        )
    }

    /// Specificity key, compared lexicographically: literal 2, named 1, wildcard end 0, exact
    /// end 3.
    fn rank(&self) -> Vec<u8> {
        let mut key: Vec<u8> = self
            .segments
            .iter()
            .map(|s| {
                if matches!(s, Segment::Literal(_)) {
                    2
                } else {
                    1
                }
            })
            .collect();
        key.push(if self.wildcard { 0 } else { 3 });
        key
    }
}

/// The route a request matched, with what Spin derives from it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub component: String,
    pub raw_route: String,
    pub based_route: String,
    /// The part of the path after a wildcard's prefix (`""` for exact routes).
    pub path_info: String,
    /// `(name, value)` of `:name` segments.
    pub named: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: &[(String, String)]) -> Result<Router> {
        let mut parsed: Vec<Route> = Vec::new();
        for (raw, component) in routes {
            let route = Route::parse(raw, component)?;
            // A later duplicate replaces an earlier one, as in Spin.
            parsed.retain(|r| r.raw != route.raw);
            parsed.push(route);
        }
        Ok(Router { routes: parsed })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        self.routes
            .iter()
            .filter_map(|r| Self::try_match(r, path).map(|m| (r.rank(), m)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, m)| m)
    }

    fn try_match(route: &Route, path: &str) -> Option<RouteMatch> {
        let mut offset = 0;
        let mut named = Vec::new();
        for seg in &route.segments {
            let rest = path[offset..].strip_prefix('/')?;
            let head = rest.split('/').next().unwrap_or_default();
            match seg {
                _ if head.is_empty() => return None,
                Segment::Literal(l) if l == head => {}
                Segment::Named(n) => named.push((n.clone(), head.to_owned())),
                Segment::Literal(_) => return None,
            }
            offset += 1 + head.len();
        }
        // What follows the matched segments: empty or starting with `/`.
        let remainder = &path[offset..];
        let path_info = if route.wildcard {
            // Spin keeps the slashes: `/foo` -> "", `/foo/` -> "/", `/foo/bar/` -> "/bar/".
            remainder.to_owned()
        } else if remainder.is_empty() || remainder == "/" {
            // Exact routes tolerate one trailing slash, as Spin's router does.
            String::new()
        } else {
            return None;
        };
        Some(RouteMatch {
            component: route.component.clone(),
            raw_route: route.raw.clone(),
            based_route: route.based.clone(),
            path_info,
            named,
        })
    }
}

impl RouteMatch {
    /// Spin's request headers for this match.
    pub fn spin_headers(&self, full_url: &str, client: SocketAddr) -> Vec<(String, String)> {
        let component_route = self
            .raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route);
        let mut headers = vec![
            ("spin-path-info".to_owned(), self.path_info.clone()),
            ("spin-full-url".to_owned(), full_url.to_owned()),
            ("spin-matched-route".to_owned(), self.based_route.clone()),
            ("spin-base-path".to_owned(), "/".to_owned()),
            (
                "spin-raw-component-route".to_owned(),
                self.raw_route.clone(),
            ),
            (
                "spin-component-route".to_owned(),
                component_route.to_owned(),
            ),
            ("spin-client-addr".to_owned(), client.to_string()),
        ];
        for (name, value) in &self.named {
            let name = name.to_ascii_lowercase().replace('_', "-");
            headers.push((format!("spin-path-match-{name}"), value.clone()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let routes: Vec<_> = routes
            .iter()
            .map(|(r, c)| (r.to_string(), c.to_string()))
            .collect();
        Router::new(&routes).unwrap()
    }

    fn hit(r: &Router, path: &str) -> Option<(String, String)> {
        r.route(path).map(|m| (m.component, m.path_info))
    }

    fn c(component: &str, info: &str) -> Option<(String, String)> {
        Some((component.to_owned(), info.to_owned()))
    }

    #[test]
    fn exact_beats_wildcard_and_longer_prefix_wins() {
        let r = router(&[
            ("/...", "root"),
            ("/v1/...", "v1"),
            ("/v1/keys.create", "create"),
            ("/v1/keys/...", "keys"),
        ]);
        assert_eq!(hit(&r, "/v1/keys.create"), c("create", ""));
        assert_eq!(hit(&r, "/v1/keys.create/"), c("create", ""));
        assert_eq!(hit(&r, "/v1/keys/abc"), c("keys", "/abc"));
        assert_eq!(hit(&r, "/v1/other"), c("v1", "/other"));
        assert_eq!(hit(&r, "/v1"), c("v1", ""));
        assert_eq!(hit(&r, "/v1/"), c("v1", "/"));
        assert_eq!(hit(&r, "/v1/a/b/"), c("v1", "/a/b/"));
        assert_eq!(hit(&r, "/elsewhere"), c("root", "/elsewhere"));
        assert_eq!(hit(&r, "/"), c("root", "/"));
    }

    #[test]
    fn unmatched_path_is_none() {
        let r = router(&[("/a", "a"), ("/b/...", "b")]);
        assert_eq!(hit(&r, "/a/x"), None);
        assert_eq!(hit(&r, "/c"), None);
        assert_eq!(hit(&r, "/bb"), None);
    }

    #[test]
    fn named_segments_lose_to_literals_and_set_headers() {
        let r = router(&[
            ("/users/:id", "user"),
            ("/users/me", "me"),
            ("/users/...", "any"),
        ]);
        assert_eq!(hit(&r, "/users/me"), c("me", ""));
        let m = r.route("/users/42").unwrap();
        assert_eq!(
            (m.component.as_str(), m.named.clone()),
            ("user", vec![("id".into(), "42".into())])
        );
        assert_eq!(hit(&r, "/users/42/x"), c("any", "/42/x"));
        let headers = m.spin_headers("http://h/users/42", "127.0.0.1:9".parse().unwrap());
        assert!(headers.contains(&("spin-path-match-id".into(), "42".into())));
    }

    #[test]
    fn spin_headers_match_spin() {
        let r = router(&[("/v1/...", "v1")]);
        let m = r.route("/v1/keys.list").unwrap();
        let h = m.spin_headers(
            "http://localhost:3000/v1/keys.list?x=1",
            "127.0.0.1:5555".parse().unwrap(),
        );
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("spin-path-info"), Some("/keys.list"));
        assert_eq!(get("spin-matched-route"), Some("/v1/..."));
        assert_eq!(get("spin-raw-component-route"), Some("/v1/..."));
        assert_eq!(get("spin-component-route"), Some("/v1"));
        assert_eq!(get("spin-base-path"), Some("/"));
        assert_eq!(get("spin-client-addr"), Some("127.0.0.1:5555"));
        assert_eq!(
            get("spin-full-url"),
            Some("http://localhost:3000/v1/keys.list?x=1")
        );
    }

    #[test]
    fn prints_routes_like_spin() {
        let r = router(&[
            ("/v1/keys.create", "create"),
            ("/v1/...", "v1"),
            ("/...", "root"),
        ]);
        let shown: Vec<_> = r.routes().iter().map(Route::display).collect();
        assert_eq!(shown, ["/v1/keys.create", "/v1 (wildcard)", "/ (wildcard)"]);
    }
}
