//! Table 31: tunnel encapsulation, one shared flow. Table 30 chose the remote endpoint
//! (`tun_dst`); the key is the destination subnet key (`reg2`), and Geneve also carries the source
//! subnet key (`reg3`) in its option (`tun_metadata0`).

use flowlib::wire::{Action, Field, Subfield};

use super::{any, apply, Emitter};
use crate::config::{NodeConfig, TunnelType};
use crate::tables::*;

mod priority {
    /// The table's only flow.
    pub const ENCAPSULATE: u16 = 0;
}

pub(crate) fn encapsulate(e: &mut Emitter<'_>, cfg: &NodeConfig) {
    let mut acts = vec![Action::move_(
        Subfield::new(Field::Reg(REG_SUBNET), 0, 24),
        Subfield::new(Field::TunId, 0, 24),
    )];
    if cfg.tunnel == TunnelType::Geneve {
        acts.push(Action::move_(
            Subfield::new(Field::Reg(REG_SRC_SUBNET), 0, 24),
            Subfield::new(Field::TunMetadata(GENEVE_OPT_INDEX), 0, 24),
        ));
    }
    acts.push(Action::output(cfg.ports.tunnel));
    e.flow(
        Stage::L2,
        T_TUNNEL,
        priority::ENCAPSULATE,
        any(),
        apply(acts),
    );
}
