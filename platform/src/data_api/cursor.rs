//! Opaque list cursors: base64url of `{"o": order column, "d": descending, "v": value, "id"}`.
//!
//! A cursor only positions a keyset query; its values are bound as parameters and cast
//! like any filter value, so a forged cursor can at worst produce an error or a
//! different page of the same tenant's rows.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The position after the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The order column.
    #[serde(rename = "o")]
    pub column: String,
    /// Descending order.
    #[serde(rename = "d")]
    pub desc: bool,
    /// The last row's order value, as text.
    #[serde(rename = "v")]
    pub value: Option<String>,
    /// The last row's id.
    pub id: String,
}

impl Cursor {
    /// Encodes the cursor.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a cursor made for the same order.
    ///
    /// # Errors
    /// A message when the text is not a cursor or was made for another order.
    pub fn decode(text: &str, column: &str, desc: bool) -> Result<Self, String> {
        let bad = || "the cursor is not one this API returned; start again without it".to_string();
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.column != column || cursor.desc != desc {
            return Err(
                "the cursor was made for a different order; use the same order for every page"
                    .into(),
            );
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_tied_to_its_order() {
        let cursor = Cursor {
            column: "name".into(),
            desc: true,
            value: Some("Ada".into()),
            id: "0b8f".into(),
        };
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, "name", true), Ok(cursor));
        assert!(Cursor::decode(&text, "name", false).is_err());
        assert!(Cursor::decode("%%%", "name", true).is_err());
    }
}
