//! Tokens found in the environment: variables, files, `.env`, and the seed clients'
//! search orders.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::TokenError;
use super::provider::{Chain, TokenFuture, TokenProvider};
use super::token::{Token, normalise};

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// What the environment sources read: variables (through a lookup, so tests never touch
/// the process environment), the working directory (for `.env`) and the home directory
/// (for stored files). Cheap to clone.
///
/// [`process`](Self::process) reads the real environment at each look-up; the home
/// directory is `$HOME` (`%USERPROFILE%` on Windows) and the working directory the
/// process's current one, unless set.
#[derive(Clone)]
pub struct Environment {
    vars: Arc<Lookup>,
    working_dir: Option<PathBuf>,
    home_dir: Option<PathBuf>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("working_dir", &self.working_dir)
            .field("home_dir", &self.home_dir)
            .finish_non_exhaustive()
    }
}

impl Default for Environment {
    fn default() -> Self {
        Self::process()
    }
}

impl Environment {
    /// The process environment.
    pub fn process() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Variables read through `lookup` (a name to its value); for tests and for other
    /// configuration sources. Empty or blank values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            vars: Arc::new(lookup),
            working_dir: None,
            home_dir: None,
        }
    }

    /// The directory whose `.env` file [`dotenv`](Self::dotenv) reads. Default: the
    /// process's current directory at each look-up.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// The home directory of stored files (`~/.config/ais/...`). Default: `$HOME`
    /// (`%USERPROFILE%` on Windows) read through the lookup.
    pub fn home_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home_dir = Some(dir.into());
        self
    }

    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.vars)(name).filter(|v| !v.trim().is_empty())
    }

    fn home(&self) -> Option<PathBuf> {
        self.home_dir.clone().or_else(|| {
            self.get("HOME")
                .or_else(|| self.get("USERPROFILE"))
                .map(PathBuf::from)
        })
    }

    fn cwd(&self) -> Option<PathBuf> {
        self.working_dir
            .clone()
            .or_else(|| std::env::current_dir().ok())
    }

    /// The variable `name` (`FEDN_AUTH_TOKEN`, `AIS_AUTHN_TOKEN`, `ANACONDA_CLOUD_API_KEY`,
    /// any name). A value `Bearer xyz` (any scheme word) becomes `xyz`, as FEDn reads it.
    pub fn var(&self, name: impl Into<String>) -> EnvVar {
        EnvVar {
            env: self.clone(),
            name: name.into(),
        }
    }

    /// The file whose path is in the variable `name` (`AIS_AUTHN_TOKEN_FILE`). Unset: not
    /// found. Set but missing or unreadable: an error, since the user pointed at it.
    pub fn file_from_var(&self, name: impl Into<String>) -> TokenFile {
        TokenFile {
            place: Place::Var(self.clone(), name.into()),
            key: None,
        }
    }

    /// The variable `name` in the `.env` file of the working directory.
    pub fn dotenv(&self, name: impl Into<String>) -> DotEnv {
        DotEnv {
            env: self.clone(),
            name: name.into(),
            path: None,
        }
    }

    /// FEDn's clients: `FEDN_AUTH_TOKEN`, with `Bearer xyz` read as `xyz`.
    pub fn fedn(&self) -> EnvVar {
        self.var("FEDN_AUTH_TOKEN")
    }

    /// AIStore's CLI: `AIS_AUTHN_TOKEN`; else the file `AIS_AUTHN_TOKEN_FILE` names (an
    /// error when it is set and cannot be read); else the file `ais auth login` writes,
    /// `~/.config/ais/cli/auth.token`. The variable wins when both are set, as in the CLI.
    /// Token files hold `{"token": "..."}` (what the CLI writes) or the bare token.
    pub fn aistore(&self) -> Chain {
        Chain::new()
            .or(self.var("AIS_AUTHN_TOKEN"))
            .or(self.file_from_var("AIS_AUTHN_TOKEN_FILE"))
            .or(TokenFile {
                place: Place::Home(self.clone(), PathBuf::from(".config/ais/cli/auth.token")),
                key: None,
            })
    }

    /// anaconda-cloud-auth's order: the argument `api_key` when given; else
    /// `ANACONDA_CLOUD_API_KEY`; else that name in `.env` of the working directory; else
    /// `api_key` in the `[plugin.cloud]` table of the stored configuration,
    /// `ANACONDA_CONFIG_TOML` or `~/.anaconda/config.toml`. (The system keyring, its last
    /// place, is not read.)
    pub fn anaconda_cloud(&self, api_key: Option<&str>) -> Chain {
        let mut chain = Chain::new();
        if let Some(key) = api_key {
            chain = chain.or(Argument(key.to_owned()));
        }
        chain
            .or(self.var("ANACONDA_CLOUD_API_KEY"))
            .or(self.dotenv("ANACONDA_CLOUD_API_KEY"))
            .or(TokenFile {
                place: Place::VarOrHome(
                    self.clone(),
                    "ANACONDA_CONFIG_TOML".into(),
                    PathBuf::from(".anaconda/config.toml"),
                ),
                key: Some(vec!["plugin".into(), "cloud".into(), "api_key".into()]),
            })
    }
}

/// A value given in code, normalised like the others (`Bearer xyz` is `xyz`).
struct Argument(String);

impl TokenProvider for Argument {
    fn token(&self) -> TokenFuture<'_> {
        let found = normalise(&self.0)
            .map(Token::new)
            .map_err(|what| TokenError::invalid("argument", what));
        Box::pin(async move { found })
    }
}

/// An environment variable holding the token; see [`Environment::var`].
///
/// ```
/// use portcullis::client::{Environment, TokenProvider};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let env = Environment::from_lookup(|name| (name == "FEDN_AUTH_TOKEN").then(|| "Bearer xyz".to_owned()));
/// assert_eq!(env.fedn().token().await?.secret(), "xyz");
/// # Ok::<(), portcullis::client::TokenError>(())
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct EnvVar {
    env: Environment,
    name: String,
}

impl EnvVar {
    /// The variable `name` of the process environment.
    pub fn new(name: impl Into<String>) -> Self {
        Environment::process().var(name)
    }
}

impl TokenProvider for EnvVar {
    fn token(&self) -> TokenFuture<'_> {
        let place = format!("env {}", self.name);
        let found = match self.env.get(&self.name) {
            None => Err(TokenError::not_found(vec![place])),
            Some(v) => normalise(&v)
                .map(Token::new)
                .map_err(|what| TokenError::invalid(&place, what)),
        };
        Box::pin(async move { found })
    }
}

#[derive(Clone)]
enum Place {
    Path(PathBuf),
    /// The path is in a variable; the file must exist when the variable is set.
    Var(Environment, String),
    /// Relative to the home directory; optional.
    Home(Environment, PathBuf),
    /// The path in a variable, else relative to the home directory; optional either way.
    VarOrHome(Environment, String, PathBuf),
}

/// A file holding the token: the bare token (`Bearer xyz` is read as `xyz`), or JSON
/// `{"token": "..."}` as AIStore's `ais auth login` writes it, or one key of a TOML file.
/// Read at each look-up, so a file rewritten by a login tool is picked up. A missing file
/// is not found; a file that exists but cannot be read or holds no token is an error.
///
/// ```
/// use portcullis::client::{TokenFile, TokenProvider};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("portcullis-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("auth.token");
/// std::fs::write(&path, r#"{"token": "abc"}"#).unwrap();
/// assert_eq!(TokenFile::new(&path).token().await?.secret(), "abc");
/// std::fs::write(&path, "[plugin.cloud]\napi_key = \"k\"\n").unwrap();
/// assert_eq!(TokenFile::new(&path).toml_key("plugin.cloud.api_key").token().await?.secret(), "k");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), portcullis::client::TokenError>(())
/// # });
/// ```
#[derive(Clone)]
pub struct TokenFile {
    place: Place,
    key: Option<Vec<String>>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path().map(|(p, _)| p))
            .field("key", &self.key)
            .finish()
    }
}

impl TokenFile {
    /// The file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            place: Place::Path(path.as_ref().to_path_buf()),
            key: None,
        }
    }

    /// Reads the file as TOML and takes the string at the dotted `path` of tables
    /// (`plugin.cloud.api_key`).
    pub fn toml_key(mut self, path: &str) -> Self {
        self.key = Some(path.split('.').map(str::to_owned).collect());
        self
    }

    /// The path and whether the file must exist; `Err` for places not configured.
    fn path(&self) -> Result<(PathBuf, bool), String> {
        match &self.place {
            Place::Path(p) => Ok((p.clone(), false)),
            Place::Var(env, name) => env
                .get(name)
                .map(|p| (PathBuf::from(p.trim()), true))
                .ok_or_else(|| format!("env {name}")),
            Place::Home(env, rel) => env
                .home()
                .map(|h| (h.join(rel), false))
                .ok_or_else(|| format!("~/{} (no home directory)", rel.display())),
            Place::VarOrHome(env, name, rel) => match env.get(name) {
                Some(p) => Ok((PathBuf::from(p.trim()), false)),
                None => env
                    .home()
                    .map(|h| (h.join(rel), false))
                    .ok_or_else(|| format!("~/{} (no home directory)", rel.display())),
            },
        }
    }

    fn read(&self) -> Result<Token, TokenError> {
        let (path, required) = self.path().map_err(|p| TokenError::not_found(vec![p]))?;
        let place = match &self.key {
            Some(key) => format!("{} ({})", path.display(), key.join(".")),
            None => path.display().to_string(),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Err(TokenError::not_found(vec![place]));
            }
            Err(e) => return Err(TokenError::invalid(&place, &format!("cannot read: {e}"))),
        };
        let value = match &self.key {
            Some(key) => {
                let doc: toml::Table = text
                    .parse()
                    .map_err(|_| TokenError::invalid(&place, "is not valid TOML"))?;
                let mut at = Some(&toml::Value::Table(doc));
                for part in key {
                    at = at.and_then(|v| v.get(part.as_str()));
                }
                match at {
                    None => return Err(TokenError::not_found(vec![place])),
                    Some(toml::Value::String(s)) => s.clone(),
                    Some(_) => return Err(TokenError::invalid(&place, "is not a string")),
                }
            }
            None if text.trim_start().starts_with('{') => {
                #[derive(serde::Deserialize)]
                struct TokenMsg {
                    token: String,
                }
                serde_json::from_str::<TokenMsg>(&text)
                    .map_err(|_| TokenError::invalid(&place, "is JSON without a string `token`"))?
                    .token
            }
            None => text,
        };
        normalise(&value)
            .map(Token::new)
            .map_err(|what| TokenError::invalid(&place, what))
    }
}

impl TokenProvider for TokenFile {
    fn token(&self) -> TokenFuture<'_> {
        let found = self.read();
        Box::pin(async move { found })
    }
}

/// A variable of a `.env` file (`NAME=value` lines; `export`, quotes and `#` comments as
/// python-dotenv reads them; the last definition wins). Read at each look-up; a missing
/// file or name is not found. See [`Environment::dotenv`].
#[derive(Clone, Debug)]
pub struct DotEnv {
    env: Environment,
    name: String,
    path: Option<PathBuf>,
}

impl DotEnv {
    /// The variable `name` in `.env` of the process's current directory.
    pub fn new(name: impl Into<String>) -> Self {
        Environment::process().dotenv(name)
    }

    /// Reads this file instead of `.env` in the working directory.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    fn read(&self) -> Result<Token, TokenError> {
        let path = match (&self.path, self.env.cwd()) {
            (Some(p), _) => p.clone(),
            (None, Some(dir)) => dir.join(".env"),
            (None, None) => {
                return Err(TokenError::not_found(vec![format!(".env ({})", self.name)]));
            }
        };
        let place = format!("{} ({})", path.display(), self.name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TokenError::not_found(vec![place]));
            }
            Err(e) => return Err(TokenError::invalid(&place, &format!("cannot read: {e}"))),
        };
        match dotenv_value(&text, &self.name) {
            None => Err(TokenError::not_found(vec![place])),
            Some(v) if v.trim().is_empty() => Err(TokenError::not_found(vec![place])),
            Some(v) => normalise(&v)
                .map(Token::new)
                .map_err(|what| TokenError::invalid(&place, what)),
        }
    }
}

impl TokenProvider for DotEnv {
    fn token(&self) -> TokenFuture<'_> {
        let found = self.read();
        Box::pin(async move { found })
    }
}

/// The last value of `name` in a `.env` text.
fn dotenv_value(text: &str, name: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != name || key.trim_start().starts_with('#') {
            continue;
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &rest[1..];
                match body.find(q) {
                    Some(end) => body[..end].to_owned(),
                    None => continue,
                }
            }
            _ => match rest.find(" #") {
                Some(i) => rest[..i].trim_end().to_owned(),
                None => rest.trim_end().to_owned(),
            },
        };
        found = Some(value);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::dotenv_value;

    #[test]
    fn dotenv_lines() {
        let text =
            "# comment\nA=1\nexport B = \"two words\" # c\nC='x#y'\nD=plain # note\nA=last\n";
        assert_eq!(dotenv_value(text, "A").as_deref(), Some("last"));
        assert_eq!(dotenv_value(text, "B").as_deref(), Some("two words"));
        assert_eq!(dotenv_value(text, "C").as_deref(), Some("x#y"));
        assert_eq!(dotenv_value(text, "D").as_deref(), Some("plain"));
        assert_eq!(dotenv_value(text, "E"), None);
        assert_eq!(dotenv_value("#A=1\n", "A"), None);
    }
}
