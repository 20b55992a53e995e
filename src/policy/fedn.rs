//! The ready FEDn REST policy.

use super::{Policy, PolicyBuilder};

/// FEDn's REST routes for the `client` role, with their methods.
const CLIENT_ROUTES: [(&str, &str); 7] = [
    ("POST", "/api/v1/clients/add"),
    ("GET", "/api/v1/packages/download"),
    ("GET", "/api/v1/packages/checksum"),
    ("POST", "/api/v1/analytics/"),
    ("POST", "/add_client"),
    ("GET", "/download_package"),
    ("GET", "/get_package_checksum"),
];

impl Policy {
    /// FEDn's REST policy, as a builder you can extend (add routes, a URL prefix, public
    /// prefixes, required claims) before `build()`:
    ///
    /// - `client` on FEDn's client routes: `POST /api/v1/clients/add`,
    ///   `GET /api/v1/packages/download`, `GET /api/v1/packages/checksum`,
    ///   `POST /api/v1/analytics/`, and the older `POST /add_client`,
    ///   `GET /download_package`, `GET /get_package_checksum`;
    /// - `combiner` on `POST /add_combiner`;
    /// - `admin` on every route (FEDn has no admin on client routes; we make admin a
    ///   superuser);
    /// - `/health` public; routes no rule names are denied.
    ///
    /// Where FEDn answers 401 for a role mismatch we answer 403, and malformed headers
    /// get 400 instead of 500.
    ///
    /// ```
    /// use portcullis::Policy;
    ///
    /// let policy = Policy::fedn_rest().build()?;
    /// let add = policy.target(&http::Method::POST, "/api/v1/clients/add")?;
    /// assert!(policy.decide_roles(&["client"], &add).is_allowed());
    /// let list = policy.target(&http::Method::GET, "/api/v1/clients/")?;
    /// assert!(!policy.decide_roles(&["client"], &list).is_allowed());
    /// assert!(policy.decide_roles(&["admin"], &list).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fedn_rest() -> PolicyBuilder {
        let mut b = Policy::builder();
        for (method, path) in CLIENT_ROUTES {
            b = b.allow(method, path, ["client"]);
        }
        b.allow("POST", "/add_combiner", ["combiner"])
            .allow("*", "/**", ["admin"])
            .public_prefix("/health")
    }
}
