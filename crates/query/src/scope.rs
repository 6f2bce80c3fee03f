//! Whose rows a query may see.

use std::fmt;

/// The rows a query may read, decided by the key that asked, never by the SQL text.
///
/// A [`Scope::Tenant`] query gets table providers that filter every scan by the table's tenant
/// column below the SQL plan (see [`crate::provider`]), so no statement can reach another
/// tenant's rows whatever it joins, nests or unions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Only the rows of this tenant (a read key).
    Tenant(String),
    /// Every tenant's rows (an admin key, the CLI).
    All,
}

impl Scope {
    /// The tenant the scope is limited to, if any.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::Tenant(tenant) => Some(tenant),
            Scope::All => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant(tenant) => write!(f, "tenant {tenant}"),
            Scope::All => f.write_str("all tenants"),
        }
    }
}
