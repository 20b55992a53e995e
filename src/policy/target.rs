//! A request target as the policy reads it: an HTTP method and path, or a gRPC method
//! ([`Target`], re-exported as `portcullis::Target`).

use std::sync::Arc;

use http::{HeaderMap, Method};

use super::pattern::Segs;

/// A request target checked against the policy: an HTTP method and path, or a gRPC
/// method. It borrows the request and allocates nothing.
#[derive(Debug)]
pub struct Target<'a> {
    pub(super) kind: TargetKind<'a>,
    /// The public prefix or method pattern that covers the target, if any.
    pub(super) public: Option<Arc<str>>,
    /// The request's query, for rules that read a parameter (never for matching).
    pub(super) query: Option<&'a str>,
    /// The request's headers (gRPC: metadata), for conditions that read one.
    pub(super) headers: Option<&'a HeaderMap>,
}

#[derive(Debug)]
pub(super) enum TargetKind<'a> {
    Http {
        method: &'a Method,
        /// The path as sent.
        full: Segs<'a>,
        /// The path with the URL prefix stripped, when it starts with it.
        stripped: Option<Segs<'a>>,
    },
    Grpc {
        /// The full method name, `/pkg.Service/Method`.
        method: &'a str,
        /// Its service, `pkg.Service`.
        service: &'a str,
    },
    /// Any method of a service whose name is not known (a tonic interceptor's view):
    /// only rules for every method (`*`) apply.
    #[cfg_attr(not(feature = "tonic"), allow(dead_code))]
    GrpcAnyMethod,
}

impl Target<'_> {
    /// Whether a public prefix (or public gRPC method) covers the target, so it needs no
    /// token.
    pub fn is_public(&self) -> bool {
        self.public.is_some()
    }

    /// Whether this is a gRPC method rather than an HTTP route.
    pub fn is_grpc(&self) -> bool {
        !matches!(self.kind, TargetKind::Http { .. })
    }
}

impl<'a> Target<'a> {
    /// The same target with the request's query (without `?`), which the layer passes on.
    /// Matching never reads it; only rules that take a request parameter from it do (an
    /// integration's rule may read a parameter its REST API puts there).
    ///
    /// ```
    /// use portcullis::Policy;
    ///
    /// let policy = Policy::builder().allow("GET", "/v1/objects/**", ["*"]).build()?;
    /// let target = policy.target(&http::Method::GET, "/v1/objects/b/o")?.with_query(Some("provider=aws"));
    /// assert_eq!(policy.decide_roles(&["reader"], &target).is_allowed(), true);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_query(mut self, query: Option<&'a str>) -> Self {
        self.query = query;
        self
    }

    /// The same target with the request's headers (gRPC: its metadata), which the layer
    /// passes on; only [conditions](crate::Condition) that compare a claim with a header
    /// read them. Without them such a condition fails.
    ///
    /// ```
    /// use portcullis::{Condition, Policy};
    ///
    /// let policy = Policy::builder()
    ///     .allow_when("GET", "/reports", ["*"], [Condition::claim_equals_header("org", "x-org")])
    ///     .build()?;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-org", "acme".parse()?);
    /// let target = policy.target(&http::Method::GET, "/reports")?.with_headers(&headers);
    /// // Without a verified caller no condition holds: the reason names the condition.
    /// let decision = policy.decide_roles(&["staff"], &target);
    /// assert!(decision.reason().to_string().contains("claim `org` = header `x-org`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_headers(mut self, headers: &'a HeaderMap) -> Self {
        self.headers = Some(headers);
        self
    }
}

impl Target<'static> {
    /// Any method of a gRPC service, for a decision that cannot see the method name.
    #[cfg(feature = "tonic")]
    pub(crate) fn any_grpc_method() -> Self {
        Self {
            kind: TargetKind::GrpcAnyMethod,
            public: None,
            query: None,
            headers: None,
        }
    }
}
