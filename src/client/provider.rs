//! The `TokenProvider` trait (where a client gets the token it sends), static tokens and
//! chains. Not to be confused with the server's [`TokenSource`](crate::TokenSource), where
//! a server reads a token from a request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::error::{TokenError, TokenErrorKind};
use super::token::Token;

/// The future of [`TokenProvider::token`].
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, TokenError>> + Send + 'a>>;

/// The future of [`TokenProvider::renew`].
pub type RenewFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Token>, TokenError>> + Send + 'a>>;

/// Where a client gets the token it sends.
///
/// [`token`](Self::token) is called for every outgoing request through
/// [`TokenLayer`](super::TokenLayer); a source that refreshes does it there, before the
/// token expires. [`renew`](Self::renew) is called when the server refused a token that
/// `token` gave (a 401 `Token expired`): it returns a different token to retry with, or
/// `None` when it has no other.
///
/// Sources: a [`Token`] (static), [`EnvVar`](super::EnvVar), [`TokenFile`](super::TokenFile),
/// [`DotEnv`](super::DotEnv), [`Chain`], and [`Refreshing`](super::Refreshing).
pub trait TokenProvider: Send + Sync + 'static {
    /// The token to send now.
    fn token(&self) -> TokenFuture<'_>;

    /// The server refused `rejected`: a different token to retry with, or `None`.
    ///
    /// The default looks again ([`token`](Self::token)) and returns what it finds when it
    /// differs, so an environment variable or a file that was updated is picked up.
    fn renew<'a>(&'a self, rejected: &'a Token) -> RenewFuture<'a> {
        Box::pin(async move {
            let found = self.token().await?;
            Ok((found.secret() != rejected.secret()).then_some(found))
        })
    }
}

/// A token is a static source: it never changes and cannot be renewed.
impl TokenProvider for Token {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.clone();
        Box::pin(async move { Ok(token) })
    }

    fn renew<'a>(&'a self, _rejected: &'a Token) -> RenewFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}

impl<T: TokenProvider + ?Sized> TokenProvider for Arc<T> {
    fn token(&self) -> TokenFuture<'_> {
        (**self).token()
    }

    fn renew<'a>(&'a self, rejected: &'a Token) -> RenewFuture<'a> {
        (**self).renew(rejected)
    }
}

/// Sources tried in order: the first that finds a token wins.
///
/// A source that finds nothing ([`NotFound`](TokenErrorKind::NotFound)) passes to the
/// next; any other error (a malformed value, an unreadable file that was named, a refused
/// refresh) stops the chain, so a broken setting is reported rather than skipped. When no
/// source finds a token, the error lists every place looked in, in order. A renewal asks
/// the source that gave the token.
///
/// ```
/// use portcullis::client::{Chain, Environment, Token, TokenErrorKind, TokenProvider};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let env = Environment::from_lookup(|name| (name == "B").then(|| "Bearer from-b".to_owned()));
/// let chain = Chain::new().or(env.var("A")).or(env.var("B")).or(Token::new("fallback"));
/// assert_eq!(chain.token().await?.secret(), "from-b");
///
/// let none = Chain::new().or(env.var("A")).or(env.var("C"));
/// let err = none.token().await.unwrap_err();
/// assert_eq!(err.kind(), TokenErrorKind::NotFound);
/// assert_eq!(err.to_string(), "no token found; looked in env A, env C");
/// # Ok::<(), portcullis::client::TokenError>(())
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Chain {
    sources: Vec<Arc<dyn TokenProvider>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl Chain {
    /// An empty chain (it finds nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `source`, tried after the ones before it.
    pub fn or(mut self, source: impl TokenProvider) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// The first source that finds a token, with the token.
    async fn find(&self) -> Result<(&Arc<dyn TokenProvider>, Token), TokenError> {
        let mut looked = Vec::new();
        for source in &self.sources {
            match source.token().await {
                Ok(token) => return Ok((source, token)),
                Err(e) if e.kind() == TokenErrorKind::NotFound => {
                    looked.extend(e.looked().map(str::to_owned));
                }
                Err(e) => return Err(e),
            }
        }
        Err(TokenError::not_found(looked))
    }
}

impl TokenProvider for Chain {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move { self.find().await.map(|(_, token)| token) })
    }

    fn renew<'a>(&'a self, rejected: &'a Token) -> RenewFuture<'a> {
        Box::pin(async move {
            let (source, _) = self.find().await?;
            source.renew(rejected).await
        })
    }
}
