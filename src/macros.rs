//! Macros shared by the crate's middleware.

/// `get_ref`, `get_mut` and `into_inner` for a service that wraps `inner: S`, as tower-http
/// gives each of its services.
macro_rules! inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes this service and returns the inner one.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub(crate) use inner_service_accessors;
