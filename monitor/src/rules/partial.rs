//! Three-valued evaluation of conditions with only some fields known: "can any enabled rule
//! match an event of this type on which these fields have these values?". It lets the kernel
//! drop whole classes of events (sends on TCP sockets, say) that no loaded rule can match,
//! while staying a necessary condition: unknown fields are assumed to make a check hold.

use super::eval::{Node, Program};
use crate::event::Event;

/// Known(true/false) or Unknown.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tri {
    True,
    False,
    Unknown,
}

fn not(t: Tri) -> Tri {
    match t {
        Tri::True => Tri::False,
        Tri::False => Tri::True,
        Tri::Unknown => Tri::Unknown,
    }
}

/// The value of `node` on `ev`, where only checks on `known` fields (and the event type) are
/// decided; the others are Unknown.
fn tri(node: &Node, ev: &Event, known: &[&str]) -> Tri {
    match node {
        Node::Const(b) => {
            if *b {
                Tri::True
            } else {
                Tri::False
            }
        }
        Node::Types(set) => {
            if set.contains(ev.ty) {
                Tri::True
            } else {
                Tri::False
            }
        }
        Node::Not(n) => not(tri(n, ev, known)),
        Node::And(parts) => {
            let mut acc = Tri::True;
            for p in parts.iter() {
                match tri(p, ev, known) {
                    Tri::False => return Tri::False,
                    Tri::Unknown => acc = Tri::Unknown,
                    Tri::True => {}
                }
            }
            acc
        }
        Node::Or(parts) => {
            let mut acc = Tri::False;
            for p in parts.iter() {
                match tri(p, ev, known) {
                    Tri::True => return Tri::True,
                    Tri::Unknown => acc = Tri::Unknown,
                    Tri::False => {}
                }
            }
            acc
        }
        Node::Check(c) => {
            if c.lhs.transforms.is_empty() && known.contains(&c.lhs.def.name) {
                if Program::new(node).eval(ev) {
                    Tri::True
                } else {
                    Tri::False
                }
            } else {
                Tri::Unknown
            }
        }
    }
}

/// False only when `node` is certainly false on every event that agrees with `ev` on the
/// event type and the `known` fields.
pub fn may_match(node: &Node, ev: &Event, known: &[&str]) -> bool {
    tri(node, ev, known) != Tri::False
}
