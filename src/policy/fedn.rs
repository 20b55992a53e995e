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

/// FEDn's gRPC method map: methods and the roles that may call them. FEDn also maps
/// five `fedn.Control` methods (`Start`, `Stop`, `FlushAggregationQueue`,
/// `SetAggregator`, `SetServerFunctions`) to `controller`, but whitelists the same five
/// in `GRPC_PUBLIC`, so FEDn never checks that role on them; they are public here too,
/// and carry no rule that could never apply.
const GRPC_ROLES: [(&str, &str); 7] = [
    ("/fedn.Combiner/TaskStream", "client"),
    ("/fedn.Combiner/SendModelUpdate", "client"),
    ("/fedn.Combiner/SendModelValidation", "client"),
    ("/fedn.Connector/SendHeartbeat", "client"),
    ("/fedn.Connector/SendStatus", "client"),
    ("/fedn.ModelService/Download", "client"),
    ("/fedn.ModelService/Upload", "client"),
];

/// FEDn's public gRPC methods (its `ENDPOINT_WHITELIST`).
const GRPC_PUBLIC: [&str; 9] = [
    "/fedn.Connector/AcceptingClients",
    "/fedn.Connector/ListActiveClients",
    "/fedn.Control/Start",
    "/fedn.Control/Stop",
    "/fedn.Control/SendCommand",
    "/fedn.Control/GetState",
    "/fedn.Control/FlushAggregationQueue",
    "/fedn.Control/SetAggregator",
    "/fedn.Control/SetServerFunctions",
];

impl PolicyBuilder {
    /// Adds FEDn's gRPC policy to this builder, answering as FEDn does:
    ///
    /// - `client` on `fedn.Combiner/TaskStream`, `SendModelUpdate`, `SendModelValidation`,
    ///   `fedn.Connector/SendHeartbeat`, `SendStatus`, `fedn.ModelService/Download` and
    ///   `Upload`;
    /// - public (no token): FEDn's `ENDPOINT_WHITELIST`, that is
    ///   `fedn.Connector/AcceptingClients`, `ListActiveClients`, and `fedn.Control/Start`,
    ///   `Stop`, `SendCommand`, `GetState`, `FlushAggregationQueue`, `SetAggregator`,
    ///   `SetServerFunctions`. FEDn's method map also names `controller` on five of these
    ///   `fedn.Control` methods, but since FEDn whitelists them it never checks the
    ///   `controller` role on them; neither do we, and the preset carries no such rule (a
    ///   rule under a public method could never apply, and `build()` refuses one);
    /// - methods no rule names open to any valid token.
    ///
    /// FEDn's `grpc_health_probe` user-agent allow-list is not included (it opens every
    /// method to anyone who claims that user agent); scope it with
    /// [`grpc_user_agent`](Self::grpc_user_agent) if you want it.
    ///
    /// ```
    /// use portcullis::Policy;
    ///
    /// let policy = Policy::builder().fedn_grpc().build()?;
    /// let task = policy.grpc_target("/fedn.Combiner/TaskStream", None)?;
    /// assert!(policy.decide_roles(&["client"], &task).is_allowed());
    /// assert!(!policy.decide_roles(&["admin"], &task).is_allowed());
    /// assert!(policy.grpc_target("/fedn.Connector/AcceptingClients", None)?.is_public());
    /// // Whitelisted by FEDn: no token, and so no `controller` role, is needed.
    /// assert!(policy.grpc_target("/fedn.Control/Start", None)?.is_public());
    /// let other = policy.grpc_target("/fedn.Combiner/SendModelMetric", None)?;
    /// assert!(policy.decide_roles(&["anyone"], &other).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fedn_grpc(mut self) -> Self {
        for (method, role) in GRPC_ROLES {
            self = self.allow_grpc(method, [role]);
        }
        for method in GRPC_PUBLIC {
            self = self.public_grpc(method);
        }
        self.unmatched_grpc(super::Unmatched::Authenticated)
    }
}

impl Policy {
    /// FEDn's REST and gRPC policies in one builder: [`Policy::fedn_rest`] plus
    /// [`PolicyBuilder::fedn_grpc`].
    pub fn fedn() -> PolicyBuilder {
        Policy::fedn_rest().fedn_grpc()
    }
}
