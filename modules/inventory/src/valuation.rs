//! Moving-average valuation of one item at one location, as plain arithmetic on exact
//! decimals: no data calls, so every rule is unit-tested natively.
//!
//! A [`Position`] is what the balance row holds. A receipt moves the rate to
//! `(old qty × old rate + in qty × in rate) / new qty`; an issue goes out at the current
//! rate, its value rounded to the cent; the issue that empties the position takes the
//! whole remaining value, so a position with nothing on hand is worth exactly 0 and no
//! rounding remainder is ever left behind.

use eerp_sdk::Decimal;
use eerp_sdk::decimal::round;

/// Decimals of a quantity.
pub const QTY_SCALE: u32 = 6;
/// Decimals of a rate (currency per unit).
pub const RATE_SCALE: u32 = 10;
/// Decimals of a value (cents).
pub const VALUE_SCALE: u32 = 2;

/// What one item holds at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// On hand.
    pub on_hand: Decimal,
    /// Reserved for later issues; never more than on hand.
    pub reserved: Decimal,
    /// Moving-average rate.
    pub rate: Decimal,
    /// Stock value, in cents.
    pub value: Decimal,
}

/// One change to a position: what the ledger line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Quantity in (positive) or out (negative).
    pub qty: Decimal,
    /// Value in or out, in cents, signed like `qty`.
    pub value: Decimal,
    /// The rate the quantity moved at.
    pub rate: Decimal,
}

/// Why stock cannot go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage {
    /// What could be issued.
    pub available: Decimal,
    /// On hand.
    pub on_hand: Decimal,
    /// Reserved by others.
    pub reserved: Decimal,
}

impl Position {
    /// On hand less what is reserved.
    pub fn available(&self) -> Decimal {
        self.on_hand - self.reserved
    }

    /// Receives `qty` (> 0) at `rate`; the value in is `qty × rate` to the cent.
    pub fn receive(&self, qty: Decimal, rate: Decimal) -> (Position, Change) {
        self.receive_valued(qty, rate, round(qty * rate, VALUE_SCALE))
    }

    /// Receives `qty` worth exactly `value` (a transfer brings the value the source
    /// gave up), at `rate` for the average.
    pub fn receive_valued(
        &self,
        qty: Decimal,
        rate: Decimal,
        value: Decimal,
    ) -> (Position, Change) {
        let on_hand = self.on_hand + qty;
        let rate_after = if self.on_hand <= Decimal::ZERO {
            rate
        } else {
            round(
                (self.on_hand * self.rate + qty * rate) / on_hand,
                RATE_SCALE,
            )
        };
        let after = Position {
            on_hand,
            reserved: self.reserved,
            rate: rate_after,
            value: self.value + value,
        };
        (after, Change { qty, value, rate })
    }

    /// Issues `qty` (> 0) at the current rate. `releasing` is the part of a reservation
    /// this issue consumes (0 for an unreserved issue): it is available to this issue
    /// and no longer reserved afterwards.
    ///
    /// # Errors
    /// [`Shortage`] when `qty` exceeds what is available to it.
    pub fn issue(&self, qty: Decimal, releasing: Decimal) -> Result<(Position, Change), Shortage> {
        let available = self.available() + releasing;
        if qty > available {
            return Err(Shortage {
                available,
                on_hand: self.on_hand,
                reserved: self.reserved - releasing,
            });
        }
        let on_hand = self.on_hand - qty;
        let value = if on_hand.is_zero() {
            self.value
        } else {
            round(qty * self.rate, VALUE_SCALE).min(self.value)
        };
        let after = Position {
            on_hand,
            reserved: self.reserved - releasing,
            rate: self.rate,
            value: self.value - value,
        };
        Ok((
            after,
            Change {
                qty: -qty,
                value: -value,
                rate: self.rate,
            },
        ))
    }

    /// Reserves `qty` (> 0) of what is available.
    ///
    /// # Errors
    /// [`Shortage`] when less is available.
    pub fn reserve(&self, qty: Decimal) -> Result<Position, Shortage> {
        if qty > self.available() {
            return Err(Shortage {
                available: self.available(),
                on_hand: self.on_hand,
                reserved: self.reserved,
            });
        }
        Ok(Position {
            reserved: self.reserved + qty,
            ..*self
        })
    }

    /// Gives back `qty` of a reservation.
    pub fn release(&self, qty: Decimal) -> Position {
        Position {
            reserved: (self.reserved - qty).max(Decimal::ZERO),
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn receipts_average_the_rate_and_an_issue_goes_out_at_it() {
        // ERPNext's moving-average test starts the same way.
        let (p, _) = Position::default().receive(d("10"), d("100"));
        let (p, _) = p.receive(d("10"), d("200"));
        assert_eq!((p.on_hand, p.rate, p.value), (d("20"), d("150"), d("3000")));
        let (p, change) = p.issue(d("4"), Decimal::ZERO).unwrap();
        assert_eq!((p.on_hand, p.value), (d("16"), d("2400")));
        assert_eq!(
            (change.qty, change.value, change.rate),
            (d("-4"), d("-600"), d("150"))
        );
    }

    #[test]
    fn running_on_hand_follows_the_ledger() {
        let (p, _) = Position::default().receive(d("10"), d("1"));
        assert_eq!(p.on_hand, d("10"));
        let (p, _) = p.receive(d("5"), d("1"));
        assert_eq!(p.on_hand, d("15"));
        let (p, _) = p.issue(d("3"), Decimal::ZERO).unwrap();
        assert_eq!(p.on_hand, d("12"));
    }

    #[test]
    fn the_issue_that_empties_a_location_takes_the_remaining_cents() {
        let (mut p, _) = Position::default().receive(d("3"), d("33.333333"));
        assert_eq!(p.value, d("100.00"));
        let mut out = Vec::new();
        for _ in 0..3 {
            let (next, change) = p.issue(d("1"), Decimal::ZERO).unwrap();
            out.push(change.value);
            p = next;
        }
        assert_eq!(out, [d("-33.33"), d("-33.33"), d("-33.34")]);
        assert_eq!((p.on_hand, p.value), (Decimal::ZERO, Decimal::ZERO));
    }

    #[test]
    fn rounding_never_drifts_over_many_small_moves() {
        let (mut p, first) = Position::default().receive(d("7"), d("0.013"));
        let mut ledger = first.value;
        for i in 0..1000 {
            let (next, change) = if i % 3 == 0 {
                p.receive(d("0.7"), d("0.017"))
            } else {
                p.issue(d("0.3"), Decimal::ZERO).unwrap()
            };
            ledger += change.value;
            p = next;
            assert_eq!(
                p.value, ledger,
                "the value and its ledger differ at move {i}"
            );
            assert!(p.value >= Decimal::ZERO, "value went negative at move {i}");
        }
        let (empty, last) = p.issue(p.on_hand, Decimal::ZERO).unwrap();
        assert_eq!(empty.value, Decimal::ZERO);
        assert_eq!(ledger + last.value, Decimal::ZERO);
    }

    #[test]
    fn issues_respect_reservations_except_their_own() {
        let (p, _) = Position::default().receive(d("10"), d("5"));
        let p = p.reserve(d("8")).unwrap();
        let short = p.issue(d("3"), Decimal::ZERO).unwrap_err();
        assert_eq!((short.available, short.reserved), (d("2"), d("8")));
        let (p, _) = p.issue(d("8"), d("8")).unwrap();
        assert_eq!((p.on_hand, p.reserved), (d("2"), Decimal::ZERO));
        assert!(p.reserve(d("3")).is_err());
    }

    #[test]
    fn a_receipt_into_an_empty_position_takes_the_incoming_rate() {
        let (p, _) = Position::default().receive(d("2"), d("10"));
        let (p, _) = p.issue(d("2"), Decimal::ZERO).unwrap();
        let (p, _) = p.receive(d("1"), d("40"));
        assert_eq!((p.rate, p.value), (d("40"), d("40")));
    }
}
