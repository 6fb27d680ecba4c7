//! Fixed numbers of the pipeline: tables, registers, flags, cookies, ports.
//! `docs/pipeline.md` is the map these constants implement.

/// br-int tables.
pub const T_CLASSIFY: u8 = 0;
pub const T_ARP: u8 = 10;
/// Finishes an ARP answer whose MAC table 10 chose.
pub const T_ARP_REPLY: u8 = 11;
pub const T_GATEWAY: u8 = 20;
pub const T_ROUTING: u8 = 21;
/// Per destination subnet: TTL and source MAC of routed packets.
pub const T_ROUTE_OUT: u8 = 22;
/// Learned physical-gateway MACs (u2o).
pub const T_GATEWAY_MAC: u8 = 23;
pub const T_L2: u8 = 30;
/// Tunnel encapsulation: key and Geneve option from registers.
pub const T_TUNNEL: u8 = 31;

/// Registers.
pub const REG_FLAGS: u8 = 0;
pub const REG_VPC: u8 = 1;
pub const REG_SUBNET: u8 = 2;
pub const REG_SRC_SUBNET: u8 = 3;
/// Scratch register (ARP address swap).
pub const REG_SCRATCH: u8 = 4;

/// `reg0` flags: where the packet entered.
pub const FLAG_FROM_TUNNEL: u32 = 0x1;
pub const FLAG_FROM_UPLINK: u32 = 0x2;
pub const FLAG_FROM_LOCAL: u32 = 0x4;
/// The physical gateway's MAC was learned from this ARP packet already (u2o).
pub const FLAG_GW_LEARNED: u32 = 0x8;

/// Top byte of every kovs cookie (`k`).
pub const COOKIE_MAGIC: u64 = 0x6b;
/// Mask selecting kovs's flows.
pub const COOKIE_OWNER_MASK: u64 = 0xff << 56;
pub const COOKIE_STAGE_SHIFT: u32 = 52;
pub const COOKIE_GEN_SHIFT: u32 = 44;
pub const COOKIE_OBJECT_MASK: u64 = (1 << 44) - 1;

/// Stage ids in the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    Classifier = 1,
    Arp = 2,
    L3 = 3,
    L2 = 4,
    Provider = 5,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Classifier,
        Stage::Arp,
        Stage::L3,
        Stage::L2,
        Stage::Provider,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Classifier => "classifier",
            Stage::Arp => "arp",
            Stage::L3 => "l3",
            Stage::L2 => "l2",
            Stage::Provider => "provider",
        }
    }

    pub fn from_cookie(cookie: u64) -> Option<Stage> {
        if cookie >> 56 != COOKIE_MAGIC {
            return None;
        }
        Some(match (cookie >> COOKIE_STAGE_SHIFT) & 0xf {
            1 => Stage::Classifier,
            2 => Stage::Arp,
            3 => Stage::L3,
            4 => Stage::L2,
            5 => Stage::Provider,
            _ => return None,
        })
    }
}

/// Builds a cookie.
pub fn cookie(stage: Stage, generation: u8, object: u64) -> u64 {
    (COOKIE_MAGIC << 56)
        | ((stage as u64) << COOKIE_STAGE_SHIFT)
        | ((generation as u64) << COOKIE_GEN_SHIFT)
        | (object & COOKIE_OBJECT_MASK)
}

/// Whether a cookie is kovs's.
pub fn is_kovs_cookie(cookie: u64) -> bool {
    cookie & COOKIE_OWNER_MASK == COOKIE_MAGIC << 56
}

/// The integration bridge: pods, the tunnel, the node port, patch ports to provider networks.
pub const INTEGRATION_BRIDGE: &str = "br-int";

/// Port names the agent creates, and the ofports it requests for them.
pub const TUNNEL_PORT_PREFIX: &str = "kovs-";
pub const NODE_PORT_NAME: &str = "kovs0";
pub const DEFAULT_TUNNEL_OFPORT: u32 = 1;
pub const DEFAULT_NODE_OFPORT: u32 = 2;
/// First ofport requested for br-int's patch ports (one per provider network, in name order).
pub const FIRST_PATCH_OFPORT: u32 = 100;
/// On br-<pn>: the uplink and the patch peer.
pub const PROVIDER_UPLINK_OFPORT: u32 = 1;
pub const PROVIDER_PATCH_OFPORT: u32 = 2;

/// Name of the join subnet (Kube-OVN's default) and its default CIDR when no Subnet names it.
pub const JOIN_SUBNET: &str = "join";
pub const DEFAULT_JOIN_CIDR: &str = "100.64.0.0/16";

/// Geneve option carrying the source subnet key: class, type, length, tun_metadata index.
pub const GENEVE_OPT_CLASS: u16 = 0x0102;
pub const GENEVE_OPT_TYPE: u8 = 0x80;
pub const GENEVE_OPT_LEN: u8 = 4;
pub const GENEVE_OPT_INDEX: u8 = 0;

/// Patch port names for provider network `pn`.
pub fn patch_int_to_pn(pn: &str) -> String {
    format!("patch-int-{pn}")
}
pub fn patch_pn_to_int(pn: &str) -> String {
    format!("patch-{pn}-int")
}
