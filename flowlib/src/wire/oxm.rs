//! Match fields: OXM/NXM headers, the field table, and a typed, canonical `Match`.
//!
//! Fields are declared in the order ovs-vswitchd emits them (`nx_put_raw`), so a sorted
//! `Match` encodes byte-for-byte like OVS does.

use smallvec::SmallVec;

use super::{DecodeError, PutBe, Reader};

/// OXM/NXM class numbers.
pub const NXM_OF: u16 = 0x0000;
pub const NXM_NX: u16 = 0x0001;
pub const OXM_BASIC: u16 = 0x8000;
pub const OXM_PKT_REGS: u16 = 0x8001;

/// A match or action field kovs knows. Declaration order = OVS's canonical match order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    ConjId,
    InPort,
    EthSrc,
    EthDst,
    EthType,
    VlanVid,
    VlanPcp,
    Ipv4Src,
    Ipv4Dst,
    Ipv6Src,
    Ipv6Dst,
    IpDscp,
    NwTtl,
    IpProto,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    IcmpType,
    IcmpCode,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    TunId,
    TunSrc,
    TunDst,
    /// Geneve option mapped by the TLV table (0..=63).
    TunMetadata(u8),
    /// 32-bit register (0..=15).
    Reg(u8),
    PktMark,
    CtState,
    CtZone,
    CtMark,
    Metadata,
    /// 64-bit register xreg0..7 (the pair reg2N:reg2N+1). In OF1.3 matches OVS
    /// expresses it as two `Reg`s; `Match::set_xreg` does that split.
    Xreg(u8),
}

/// How OVS prints a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Decimal,
    Hex,
    Ipv4,
    Ipv6,
    Mac,
    Port,
    CtState,
}

/// Static description of a field.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    pub class: u16,
    pub code: u8,
    /// Value length in bytes on the wire (tun_metadata: maximum).
    pub len: u8,
    /// Significant bits (e.g. 12 for vlan_vid data, 6 for ip_dscp).
    pub n_bits: u16,
    pub maskable: bool,
    /// OVS's field name (`set_field:...->NAME`).
    pub name: &'static str,
    /// OVS's NXM/OXM name used in subfield syntax (`NXM_NX_REG0[0..15]`).
    pub nxm_name: &'static str,
    pub format: Format,
}

#[allow(clippy::too_many_arguments)]
const fn fi(
    class: u16,
    code: u8,
    len: u8,
    n_bits: u16,
    maskable: bool,
    name: &'static str,
    nxm_name: &'static str,
    format: Format,
) -> FieldInfo {
    FieldInfo {
        class,
        code,
        len,
        n_bits,
        maskable,
        name,
        nxm_name,
        format,
    }
}

const REG_NAMES: [&str; 16] = [
    "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7", "reg8", "reg9", "reg10",
    "reg11", "reg12", "reg13", "reg14", "reg15",
];
const REG_NXM: [&str; 16] = [
    "NXM_NX_REG0",
    "NXM_NX_REG1",
    "NXM_NX_REG2",
    "NXM_NX_REG3",
    "NXM_NX_REG4",
    "NXM_NX_REG5",
    "NXM_NX_REG6",
    "NXM_NX_REG7",
    "NXM_NX_REG8",
    "NXM_NX_REG9",
    "NXM_NX_REG10",
    "NXM_NX_REG11",
    "NXM_NX_REG12",
    "NXM_NX_REG13",
    "NXM_NX_REG14",
    "NXM_NX_REG15",
];
const XREG_NAMES: [&str; 8] = [
    "xreg0", "xreg1", "xreg2", "xreg3", "xreg4", "xreg5", "xreg6", "xreg7",
];
const XREG_OXM: [&str; 8] = [
    "OXM_OF_PKT_REG0",
    "OXM_OF_PKT_REG1",
    "OXM_OF_PKT_REG2",
    "OXM_OF_PKT_REG3",
    "OXM_OF_PKT_REG4",
    "OXM_OF_PKT_REG5",
    "OXM_OF_PKT_REG6",
    "OXM_OF_PKT_REG7",
];

macro_rules! numbered_names {
    ($prefix:literal) => {
        [
            concat!($prefix, "0"),
            concat!($prefix, "1"),
            concat!($prefix, "2"),
            concat!($prefix, "3"),
            concat!($prefix, "4"),
            concat!($prefix, "5"),
            concat!($prefix, "6"),
            concat!($prefix, "7"),
            concat!($prefix, "8"),
            concat!($prefix, "9"),
            concat!($prefix, "10"),
            concat!($prefix, "11"),
            concat!($prefix, "12"),
            concat!($prefix, "13"),
            concat!($prefix, "14"),
            concat!($prefix, "15"),
            concat!($prefix, "16"),
            concat!($prefix, "17"),
            concat!($prefix, "18"),
            concat!($prefix, "19"),
            concat!($prefix, "20"),
            concat!($prefix, "21"),
            concat!($prefix, "22"),
            concat!($prefix, "23"),
            concat!($prefix, "24"),
            concat!($prefix, "25"),
            concat!($prefix, "26"),
            concat!($prefix, "27"),
            concat!($prefix, "28"),
            concat!($prefix, "29"),
            concat!($prefix, "30"),
            concat!($prefix, "31"),
            concat!($prefix, "32"),
            concat!($prefix, "33"),
            concat!($prefix, "34"),
            concat!($prefix, "35"),
            concat!($prefix, "36"),
            concat!($prefix, "37"),
            concat!($prefix, "38"),
            concat!($prefix, "39"),
            concat!($prefix, "40"),
            concat!($prefix, "41"),
            concat!($prefix, "42"),
            concat!($prefix, "43"),
            concat!($prefix, "44"),
            concat!($prefix, "45"),
            concat!($prefix, "46"),
            concat!($prefix, "47"),
            concat!($prefix, "48"),
            concat!($prefix, "49"),
            concat!($prefix, "50"),
            concat!($prefix, "51"),
            concat!($prefix, "52"),
            concat!($prefix, "53"),
            concat!($prefix, "54"),
            concat!($prefix, "55"),
            concat!($prefix, "56"),
            concat!($prefix, "57"),
            concat!($prefix, "58"),
            concat!($prefix, "59"),
            concat!($prefix, "60"),
            concat!($prefix, "61"),
            concat!($prefix, "62"),
            concat!($prefix, "63"),
        ]
    };
}
const TUN_MD_NAMES: [&str; 64] = numbered_names!("tun_metadata");
const TUN_MD_NXM: [&str; 64] = numbered_names!("NXM_NX_TUN_METADATA");

/// Largest tun_metadata value kovs handles (OVS allows up to 124 bytes; kovs keeps values in
/// a u128, which covers every option it uses).
pub const MAX_TUN_METADATA_LEN: u8 = 16;

impl Field {
    pub fn info(self) -> FieldInfo {
        use Format::*;
        match self {
            Field::ConjId => fi(
                NXM_NX,
                37,
                4,
                32,
                false,
                "conj_id",
                "NXM_NX_CONJ_ID",
                Decimal,
            ),
            Field::InPort => fi(
                OXM_BASIC,
                0,
                4,
                32,
                false,
                "in_port",
                "OXM_OF_IN_PORT",
                Port,
            ),
            Field::EthSrc => fi(OXM_BASIC, 4, 6, 48, true, "eth_src", "NXM_OF_ETH_SRC", Mac),
            Field::EthDst => fi(OXM_BASIC, 3, 6, 48, true, "eth_dst", "NXM_OF_ETH_DST", Mac),
            Field::EthType => fi(
                OXM_BASIC,
                5,
                2,
                16,
                false,
                "eth_type",
                "NXM_OF_ETH_TYPE",
                Hex,
            ),
            Field::VlanVid => fi(
                OXM_BASIC,
                6,
                2,
                13,
                true,
                "vlan_vid",
                "OXM_OF_VLAN_VID",
                Decimal,
            ),
            Field::VlanPcp => fi(
                OXM_BASIC,
                7,
                1,
                3,
                false,
                "vlan_pcp",
                "OXM_OF_VLAN_PCP",
                Decimal,
            ),
            Field::Ipv4Src => fi(OXM_BASIC, 11, 4, 32, true, "ip_src", "NXM_OF_IP_SRC", Ipv4),
            Field::Ipv4Dst => fi(OXM_BASIC, 12, 4, 32, true, "ip_dst", "NXM_OF_IP_DST", Ipv4),
            Field::Ipv6Src => fi(
                OXM_BASIC,
                26,
                16,
                128,
                true,
                "ipv6_src",
                "NXM_NX_IPV6_SRC",
                Ipv6,
            ),
            Field::Ipv6Dst => fi(
                OXM_BASIC,
                27,
                16,
                128,
                true,
                "ipv6_dst",
                "NXM_NX_IPV6_DST",
                Ipv6,
            ),
            Field::IpDscp => fi(
                OXM_BASIC,
                8,
                1,
                6,
                false,
                "ip_dscp",
                "OXM_OF_IP_DSCP",
                Decimal,
            ),
            Field::NwTtl => fi(NXM_NX, 29, 1, 8, false, "nw_ttl", "NXM_NX_IP_TTL", Decimal),
            Field::IpProto => fi(
                OXM_BASIC,
                10,
                1,
                8,
                false,
                "nw_proto",
                "NXM_OF_IP_PROTO",
                Decimal,
            ),
            Field::TcpSrc => fi(
                OXM_BASIC,
                13,
                2,
                16,
                true,
                "tcp_src",
                "NXM_OF_TCP_SRC",
                Decimal,
            ),
            Field::TcpDst => fi(
                OXM_BASIC,
                14,
                2,
                16,
                true,
                "tcp_dst",
                "NXM_OF_TCP_DST",
                Decimal,
            ),
            Field::UdpSrc => fi(
                OXM_BASIC,
                15,
                2,
                16,
                true,
                "udp_src",
                "NXM_OF_UDP_SRC",
                Decimal,
            ),
            Field::UdpDst => fi(
                OXM_BASIC,
                16,
                2,
                16,
                true,
                "udp_dst",
                "NXM_OF_UDP_DST",
                Decimal,
            ),
            Field::IcmpType => fi(
                OXM_BASIC,
                19,
                1,
                8,
                false,
                "icmp_type",
                "NXM_OF_ICMP_TYPE",
                Decimal,
            ),
            Field::IcmpCode => fi(
                OXM_BASIC,
                20,
                1,
                8,
                false,
                "icmp_code",
                "NXM_OF_ICMP_CODE",
                Decimal,
            ),
            Field::ArpOp => fi(
                OXM_BASIC,
                21,
                2,
                16,
                false,
                "arp_op",
                "NXM_OF_ARP_OP",
                Decimal,
            ),
            Field::ArpSpa => fi(
                OXM_BASIC,
                22,
                4,
                32,
                true,
                "arp_spa",
                "NXM_OF_ARP_SPA",
                Ipv4,
            ),
            Field::ArpTpa => fi(
                OXM_BASIC,
                23,
                4,
                32,
                true,
                "arp_tpa",
                "NXM_OF_ARP_TPA",
                Ipv4,
            ),
            Field::ArpSha => fi(OXM_BASIC, 24, 6, 48, true, "arp_sha", "NXM_NX_ARP_SHA", Mac),
            Field::ArpTha => fi(OXM_BASIC, 25, 6, 48, true, "arp_tha", "NXM_NX_ARP_THA", Mac),
            Field::TunId => fi(OXM_BASIC, 38, 8, 64, true, "tun_id", "NXM_NX_TUN_ID", Hex),
            Field::TunSrc => fi(
                NXM_NX,
                31,
                4,
                32,
                true,
                "tun_src",
                "NXM_NX_TUN_IPV4_SRC",
                Ipv4,
            ),
            Field::TunDst => fi(
                NXM_NX,
                32,
                4,
                32,
                true,
                "tun_dst",
                "NXM_NX_TUN_IPV4_DST",
                Ipv4,
            ),
            Field::TunMetadata(n) => {
                let n = (n & 63) as usize;
                fi(
                    NXM_NX,
                    40 + n as u8,
                    MAX_TUN_METADATA_LEN,
                    992,
                    true,
                    TUN_MD_NAMES[n],
                    TUN_MD_NXM[n],
                    Hex,
                )
            }
            Field::Reg(n) => {
                let n = (n & 15) as usize;
                fi(NXM_NX, n as u8, 4, 32, true, REG_NAMES[n], REG_NXM[n], Hex)
            }
            Field::PktMark => fi(NXM_NX, 33, 4, 32, true, "pkt_mark", "NXM_NX_PKT_MARK", Hex),
            Field::CtState => fi(
                NXM_NX,
                105,
                4,
                32,
                true,
                "ct_state",
                "NXM_NX_CT_STATE",
                CtState,
            ),
            Field::CtZone => fi(NXM_NX, 106, 2, 16, false, "ct_zone", "NXM_NX_CT_ZONE", Hex),
            Field::CtMark => fi(NXM_NX, 107, 4, 32, true, "ct_mark", "NXM_NX_CT_MARK", Hex),
            Field::Metadata => fi(
                OXM_BASIC,
                2,
                8,
                64,
                true,
                "metadata",
                "OXM_OF_METADATA",
                Hex,
            ),
            Field::Xreg(n) => {
                let n = (n & 7) as usize;
                fi(
                    OXM_PKT_REGS,
                    n as u8,
                    8,
                    64,
                    true,
                    XREG_NAMES[n],
                    XREG_OXM[n],
                    Hex,
                )
            }
        }
    }

    /// (class, code, value length) without building the whole `FieldInfo`: the encode hot path.
    #[inline]
    pub fn wire(self) -> (u16, u8, u8) {
        match self {
            Field::ConjId => (NXM_NX, 37, 4),
            Field::InPort => (OXM_BASIC, 0, 4),
            Field::EthSrc => (OXM_BASIC, 4, 6),
            Field::EthDst => (OXM_BASIC, 3, 6),
            Field::EthType => (OXM_BASIC, 5, 2),
            Field::VlanVid => (OXM_BASIC, 6, 2),
            Field::VlanPcp => (OXM_BASIC, 7, 1),
            Field::Ipv4Src => (OXM_BASIC, 11, 4),
            Field::Ipv4Dst => (OXM_BASIC, 12, 4),
            Field::Ipv6Src => (OXM_BASIC, 26, 16),
            Field::Ipv6Dst => (OXM_BASIC, 27, 16),
            Field::IpDscp => (OXM_BASIC, 8, 1),
            Field::NwTtl => (NXM_NX, 29, 1),
            Field::IpProto => (OXM_BASIC, 10, 1),
            Field::TcpSrc => (OXM_BASIC, 13, 2),
            Field::TcpDst => (OXM_BASIC, 14, 2),
            Field::UdpSrc => (OXM_BASIC, 15, 2),
            Field::UdpDst => (OXM_BASIC, 16, 2),
            Field::IcmpType => (OXM_BASIC, 19, 1),
            Field::IcmpCode => (OXM_BASIC, 20, 1),
            Field::ArpOp => (OXM_BASIC, 21, 2),
            Field::ArpSpa => (OXM_BASIC, 22, 4),
            Field::ArpTpa => (OXM_BASIC, 23, 4),
            Field::ArpSha => (OXM_BASIC, 24, 6),
            Field::ArpTha => (OXM_BASIC, 25, 6),
            Field::TunId => (OXM_BASIC, 38, 8),
            Field::TunSrc => (NXM_NX, 31, 4),
            Field::TunDst => (NXM_NX, 32, 4),
            Field::TunMetadata(n) => (NXM_NX, 40 + (n & 63), MAX_TUN_METADATA_LEN),
            Field::Reg(n) => (NXM_NX, n & 15, 4),
            Field::PktMark => (NXM_NX, 33, 4),
            Field::CtState => (NXM_NX, 105, 4),
            Field::CtZone => (NXM_NX, 106, 2),
            Field::CtMark => (NXM_NX, 107, 4),
            Field::Metadata => (OXM_BASIC, 2, 8),
            Field::Xreg(n) => (OXM_PKT_REGS, n & 7, 8),
        }
    }

    /// Looks a field up by its OXM/NXM class and code.
    pub fn from_header(class: u16, code: u8) -> Option<Field> {
        Some(match (class, code) {
            (NXM_NX, 37) => Field::ConjId,
            (OXM_BASIC, 0) => Field::InPort,
            (OXM_BASIC, 4) => Field::EthSrc,
            (OXM_BASIC, 3) => Field::EthDst,
            (OXM_BASIC, 5) => Field::EthType,
            (OXM_BASIC, 6) => Field::VlanVid,
            (OXM_BASIC, 7) => Field::VlanPcp,
            (OXM_BASIC, 11) => Field::Ipv4Src,
            (OXM_BASIC, 12) => Field::Ipv4Dst,
            (OXM_BASIC, 26) => Field::Ipv6Src,
            (OXM_BASIC, 27) => Field::Ipv6Dst,
            (OXM_BASIC, 8) => Field::IpDscp,
            (NXM_NX, 29) => Field::NwTtl,
            (OXM_BASIC, 10) => Field::IpProto,
            (OXM_BASIC, 13) => Field::TcpSrc,
            (OXM_BASIC, 14) => Field::TcpDst,
            (OXM_BASIC, 15) => Field::UdpSrc,
            (OXM_BASIC, 16) => Field::UdpDst,
            (OXM_BASIC, 19) => Field::IcmpType,
            (OXM_BASIC, 20) => Field::IcmpCode,
            (OXM_BASIC, 21) => Field::ArpOp,
            (OXM_BASIC, 22) => Field::ArpSpa,
            (OXM_BASIC, 23) => Field::ArpTpa,
            (OXM_BASIC, 24) => Field::ArpSha,
            (OXM_BASIC, 25) => Field::ArpTha,
            (OXM_BASIC, 38) => Field::TunId,
            (NXM_NX, 31) => Field::TunSrc,
            (NXM_NX, 32) => Field::TunDst,
            (NXM_NX, c @ 40..=103) => Field::TunMetadata(c - 40),
            (NXM_NX, c @ 0..=15) => Field::Reg(c),
            (NXM_NX, 33) => Field::PktMark,
            (NXM_NX, 105) => Field::CtState,
            (NXM_NX, 106) => Field::CtZone,
            (NXM_NX, 107) => Field::CtMark,
            (OXM_BASIC, 2) => Field::Metadata,
            (OXM_PKT_REGS, c @ 0..=7) => Field::Xreg(c),
            // NXM_OF_* aliases OVS accepts in actions (move/load/learn).
            (NXM_OF, 0) => Field::InPort,
            (NXM_OF, 1) => Field::EthDst,
            (NXM_OF, 2) => Field::EthSrc,
            (NXM_OF, 3) => Field::EthType,
            (NXM_OF, 6) => Field::IpProto,
            (NXM_OF, 7) => Field::Ipv4Src,
            (NXM_OF, 8) => Field::Ipv4Dst,
            (NXM_OF, 9) => Field::TcpSrc,
            (NXM_OF, 10) => Field::TcpDst,
            (NXM_OF, 11) => Field::UdpSrc,
            (NXM_OF, 12) => Field::UdpDst,
            (NXM_OF, 13) => Field::IcmpType,
            (NXM_OF, 14) => Field::IcmpCode,
            (NXM_OF, 15) => Field::ArpOp,
            (NXM_OF, 16) => Field::ArpSpa,
            (NXM_OF, 17) => Field::ArpTpa,
            (NXM_NX, 16) => Field::TunId,
            (NXM_NX, 17) => Field::ArpSha,
            (NXM_NX, 18) => Field::ArpTha,
            (NXM_NX, 19) => Field::Ipv6Src,
            (NXM_NX, 20) => Field::Ipv6Dst,
            _ => return None,
        })
    }

    /// Finds a field by OVS name (`eth_dst`, `reg3`, `tun_metadata0`, `nw_dst`, ...).
    pub fn from_name(name: &str) -> Option<Field> {
        let aliases = [
            ("dl_src", Field::EthSrc),
            ("dl_dst", Field::EthDst),
            ("dl_type", Field::EthType),
            ("nw_src", Field::Ipv4Src),
            ("nw_dst", Field::Ipv4Dst),
            ("ip_proto", Field::IpProto),
            ("tp_src", Field::TcpSrc),
            ("tp_dst", Field::TcpDst),
            ("tunnel_id", Field::TunId),
        ];
        if let Some((_, f)) = aliases.iter().find(|(n, _)| *n == name) {
            return Some(*f);
        }
        ALL_FIELDS
            .iter()
            .copied()
            .find(|f| f.info().name == name || f.info().nxm_name == name)
    }

    /// The 4-byte OXM/NXM header for this field with a value of `len` bytes.
    #[inline]
    pub fn header(self, len: u8, masked: bool) -> u32 {
        let (class, code, _) = self.wire();
        let l = if masked { len as u32 * 2 } else { len as u32 };
        ((class as u32) << 16) | ((code as u32) << 9) | ((masked as u32) << 8) | l
    }

    /// The NXM (class, code) of fields that have one; OVS names fields by it inside NX
    /// actions (move, load, learn, output_reg) and falls back to OXM otherwise.
    pub fn nxm(self) -> Option<(u16, u8)> {
        Some(match self {
            Field::EthDst => (NXM_OF, 1),
            Field::EthSrc => (NXM_OF, 2),
            Field::EthType => (NXM_OF, 3),
            Field::IpProto => (NXM_OF, 6),
            Field::Ipv4Src => (NXM_OF, 7),
            Field::Ipv4Dst => (NXM_OF, 8),
            Field::TcpSrc => (NXM_OF, 9),
            Field::TcpDst => (NXM_OF, 10),
            Field::UdpSrc => (NXM_OF, 11),
            Field::UdpDst => (NXM_OF, 12),
            Field::IcmpType => (NXM_OF, 13),
            Field::IcmpCode => (NXM_OF, 14),
            Field::ArpOp => (NXM_OF, 15),
            Field::ArpSpa => (NXM_OF, 16),
            Field::ArpTpa => (NXM_OF, 17),
            Field::TunId => (NXM_NX, 16),
            Field::ArpSha => (NXM_NX, 17),
            Field::ArpTha => (NXM_NX, 18),
            Field::Ipv6Src => (NXM_NX, 19),
            Field::Ipv6Dst => (NXM_NX, 20),
            f => {
                let (class, code, _) = f.wire();
                if class == NXM_NX || class == NXM_OF {
                    (class, code)
                } else {
                    return None;
                }
            }
        })
    }

    /// The header OVS uses to name a whole field inside NX actions: NXM when the field has
    /// one, else OXM.
    pub fn action_header(self, len: u8) -> u32 {
        // tun_metadata is named with its maximum size (124 bytes) in actions, as OVS does.
        let len = if matches!(self, Field::TunMetadata(_)) {
            124
        } else {
            len
        };
        match self.nxm() {
            Some((class, code)) => ((class as u32) << 16) | ((code as u32) << 9) | len as u32,
            None => self.header(len, false),
        }
    }
}

/// Every field, for lookups and generators.
pub static ALL_FIELDS: std::sync::LazyLock<Vec<Field>> = std::sync::LazyLock::new(|| {
    let mut v = vec![
        Field::ConjId,
        Field::InPort,
        Field::EthSrc,
        Field::EthDst,
        Field::EthType,
        Field::VlanVid,
        Field::VlanPcp,
        Field::Ipv4Src,
        Field::Ipv4Dst,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::IpDscp,
        Field::NwTtl,
        Field::IpProto,
        Field::TcpSrc,
        Field::TcpDst,
        Field::UdpSrc,
        Field::UdpDst,
        Field::IcmpType,
        Field::IcmpCode,
        Field::ArpOp,
        Field::ArpSpa,
        Field::ArpTpa,
        Field::ArpSha,
        Field::ArpTha,
        Field::TunId,
        Field::TunSrc,
        Field::TunDst,
    ];
    v.extend((0..64).map(Field::TunMetadata));
    v.extend((0..16).map(Field::Reg));
    v.extend([
        Field::PktMark,
        Field::CtState,
        Field::CtZone,
        Field::CtMark,
        Field::Metadata,
    ]);
    v.extend((0..8).map(Field::Xreg));
    v
});

/// Well-known values.
pub mod eth_type {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
}
pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}
/// `vlan_vid` bit meaning "a VLAN tag is present" (OF1.3).
pub const OFPVID_PRESENT: u16 = 0x1000;

/// ct_state bits (NXM_NX_CT_STATE).
pub mod ct_state {
    pub const NEW: u32 = 0x01;
    pub const EST: u32 = 0x02;
    pub const REL: u32 = 0x04;
    pub const RPL: u32 = 0x08;
    pub const INV: u32 = 0x10;
    pub const TRK: u32 = 0x20;
    pub const SNAT: u32 = 0x40;
    pub const DNAT: u32 = 0x80;
    pub const NAMES: [(u32, &str); 8] = [
        (NEW, "new"),
        (EST, "est"),
        (REL, "rel"),
        (RPL, "rpl"),
        (INV, "inv"),
        (TRK, "trk"),
        (SNAT, "snat"),
        (DNAT, "dnat"),
    ];
}

/// One match entry: a field, its value (right-aligned in a u128) and an optional mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatchField {
    pub field: Field,
    /// Value length in bytes on the wire (fixed per field; variable for tun_metadata).
    pub len: u8,
    pub value: u128,
    /// `None` = exact match (OVS encodes an all-ones mask as no mask).
    pub mask: Option<u128>,
}

#[inline]
fn ones(len: u8) -> u128 {
    if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (len as u32 * 8)) - 1
    }
}

impl MatchField {
    /// Canonical form: value masked, all-ones mask dropped. `None` when the mask is zero.
    pub fn new(field: Field, len: u8, value: u128, mask: Option<u128>) -> Option<MatchField> {
        let all = ones(len);
        let value = value & all;
        match mask.map(|m| m & all) {
            Some(0) => None,
            Some(m) if m == all => Some(MatchField {
                field,
                len,
                value,
                mask: None,
            }),
            Some(m) => Some(MatchField {
                field,
                len,
                value: value & m,
                mask: Some(m),
            }),
            None => Some(MatchField {
                field,
                len,
                value,
                mask: None,
            }),
        }
    }

    /// Mask as a value (all ones when exact).
    pub fn mask_or_ones(&self) -> u128 {
        self.mask.unwrap_or_else(|| ones(self.len))
    }

    #[inline]
    pub fn encoded_len(&self) -> usize {
        4 + self.len as usize * if self.mask.is_some() { 2 } else { 1 }
    }

    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut f = super::Fixed::<36>::new();
        self.write(&mut f);
        f.append_to(out);
    }

    #[inline(always)]
    pub(crate) fn write<const N: usize>(&self, f: &mut super::Fixed<N>) {
        let len = self.len.min(16) as usize;
        f.u32(self.field.header(self.len, self.mask.is_some()));
        f.bytes(&self.value.to_be_bytes()[16 - len..]);
        if let Some(m) = self.mask {
            f.bytes(&m.to_be_bytes()[16 - len..]);
        }
    }
}

/// Appends an `ofp_match` (type OXM, length, entries, padding to 8) around OXM entries that are
/// already encoded.
#[inline]
pub fn encode_oxm_match(oxms: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.put_u16(1); // OFPMT_OXM
    out.put_u16((4 + oxms.len()) as u16);
    out.extend_from_slice(oxms);
    super::pad_to_8(out, start);
}

/// Reads `len` (<= 16) bytes as a right-aligned big-endian value.
pub(crate) fn get_value(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = bytes.len().min(16);
    b[16 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u128::from_be_bytes(b)
}

/// A decoded OXM/NXM header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OxmHeader {
    pub class: u16,
    pub code: u8,
    pub masked: bool,
    /// Payload length (value + mask).
    pub len: u8,
}

impl OxmHeader {
    pub fn parse(h: u32) -> OxmHeader {
        OxmHeader {
            class: (h >> 16) as u16,
            code: ((h >> 9) & 0x7f) as u8,
            masked: (h >> 8) & 1 == 1,
            len: (h & 0xff) as u8,
        }
    }
    /// Value length in bytes.
    pub fn value_len(&self) -> u8 {
        if self.masked {
            self.len / 2
        } else {
            self.len
        }
    }
}

/// Reads one field reference (4-byte header, or 8-byte experimenter header) from `r`.
pub(crate) fn read_field_header(r: &mut Reader<'_>) -> Result<(Field, OxmHeader), DecodeError> {
    let h = OxmHeader::parse(r.u32()?);
    if h.class == 0xffff {
        // Experimenter OXM: the experimenter id follows; kovs uses none of them.
        let exp = r.u32()?;
        return Err(DecodeError::Unknown {
            what: "experimenter OXM",
            value: exp as u64,
        });
    }
    let field = Field::from_header(h.class, h.code).ok_or(DecodeError::Unknown {
        what: "OXM field",
        value: ((h.class as u64) << 16) | ((h.code as u64) << 9),
    })?;
    Ok((field, h))
}

/// A flow's match: entries kept sorted by `Field` (OVS's canonical order), at most one per field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Match {
    fields: SmallVec<[MatchField; 4]>,
}

impl Match {
    pub fn new() -> Match {
        Match::default()
    }

    pub fn fields(&self) -> &[MatchField] {
        &self.fields
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn get(&self, field: Field) -> Option<&MatchField> {
        self.fields
            .binary_search_by(|m| m.field.cmp(&field))
            .ok()
            .map(|i| &self.fields[i])
    }

    /// Inserts or replaces an entry (keeps the canonical order).
    pub fn insert(&mut self, mf: MatchField) {
        match self.fields.binary_search_by(|m| m.field.cmp(&mf.field)) {
            Ok(i) => self.fields[i] = mf,
            Err(i) => self.fields.insert(i, mf),
        }
    }

    pub fn remove(&mut self, field: Field) {
        if let Ok(i) = self.fields.binary_search_by(|m| m.field.cmp(&field)) {
            self.fields.remove(i);
        }
    }

    /// Exact match on a fixed-size field.
    pub fn set(&mut self, field: Field, value: u128) -> &mut Self {
        let len = field.wire().2;
        if let Some(mf) = MatchField::new(field, len, value, None) {
            self.insert(mf);
        }
        self
    }

    /// Masked match on a fixed-size field; a zero mask removes the field.
    pub fn set_masked(&mut self, field: Field, value: u128, mask: u128) -> &mut Self {
        let len = field.wire().2;
        match MatchField::new(field, len, value, Some(mask)) {
            Some(mf) => self.insert(mf),
            None => self.remove(field),
        }
        self
    }

    /// tun_metadata match with the option length from the TLV map.
    pub fn set_tun_metadata(
        &mut self,
        idx: u8,
        len: u8,
        value: u128,
        mask: Option<u128>,
    ) -> &mut Self {
        if let Some(mf) =
            MatchField::new(Field::TunMetadata(idx & 63), len.clamp(1, 16), value, mask)
        {
            self.insert(mf);
        }
        self
    }

    /// xregN = reg(2N) (high 32 bits) : reg(2N+1) (low), as OVS encodes it in OF1.3.
    pub fn set_xreg(&mut self, n: u8, value: u64, mask: u64) -> &mut Self {
        let n = n & 7;
        self.set_masked(
            Field::Reg(2 * n),
            (value >> 32) as u128,
            (mask >> 32) as u128,
        );
        self.set_masked(
            Field::Reg(2 * n + 1),
            value as u32 as u128,
            mask as u32 as u128,
        );
        self
    }

    // Convenience builders for the common fields.
    pub fn in_port(&mut self, port: u32) -> &mut Self {
        self.set(Field::InPort, port as u128)
    }
    pub fn eth_type(&mut self, t: u16) -> &mut Self {
        self.set(Field::EthType, t as u128)
    }
    pub fn eth_src(&mut self, mac: [u8; 6]) -> &mut Self {
        self.set(Field::EthSrc, mac_to_u128(mac))
    }
    pub fn eth_dst(&mut self, mac: [u8; 6]) -> &mut Self {
        self.set(Field::EthDst, mac_to_u128(mac))
    }
    pub fn ipv4_src(&mut self, ip: std::net::Ipv4Addr) -> &mut Self {
        self.set(Field::Ipv4Src, u32::from(ip) as u128)
    }
    pub fn ipv4_dst(&mut self, ip: std::net::Ipv4Addr) -> &mut Self {
        self.set(Field::Ipv4Dst, u32::from(ip) as u128)
    }
    pub fn ipv4_dst_prefix(&mut self, ip: std::net::Ipv4Addr, prefix: u8) -> &mut Self {
        self.set_masked(
            Field::Ipv4Dst,
            u32::from(ip) as u128,
            prefix_mask32(prefix) as u128,
        )
    }
    pub fn ipv4_src_prefix(&mut self, ip: std::net::Ipv4Addr, prefix: u8) -> &mut Self {
        self.set_masked(
            Field::Ipv4Src,
            u32::from(ip) as u128,
            prefix_mask32(prefix) as u128,
        )
    }
    pub fn reg(&mut self, n: u8, value: u32) -> &mut Self {
        self.set(Field::Reg(n), value as u128)
    }
    pub fn metadata(&mut self, value: u64) -> &mut Self {
        self.set(Field::Metadata, value as u128)
    }
    pub fn tun_id(&mut self, value: u64) -> &mut Self {
        self.set(Field::TunId, value as u128)
    }

    /// Encoded OXM bytes (without the ofp_match header/padding).
    pub fn oxm_len(&self) -> usize {
        self.fields.iter().map(|f| f.encoded_len()).sum()
    }

    /// Appends an `ofp_match` (type OXM, length, entries, padding to 8).
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Most matches fit one stack buffer: one copy into `out`.
        if self.fields.len() <= 2 {
            self.encode_fixed::<80>(out);
            return;
        }
        if self.fields.len() <= 4 {
            self.encode_fixed::<152>(out);
            return;
        }
        let start = out.len();
        out.put_u16(1); // OFPMT_OXM
        out.put_u16(0);
        for f in &self.fields {
            f.encode(out);
        }
        let len = out.len() - start;
        out.patch_u16(start + 2, len as u16);
        super::pad_to_8(out, start);
    }

    /// Builds the match in a stack buffer of `N` bytes (room for its fields) and appends it.
    #[inline(always)]
    fn encode_fixed<const N: usize>(&self, out: &mut Vec<u8>) {
        let mut f = super::Fixed::<N>::new();
        f.u16(1).u16(0); // OFPMT_OXM, length
        for mf in &self.fields {
            mf.write(&mut f);
        }
        let len = f.n as u16;
        f.b[2..4].copy_from_slice(&len.to_be_bytes());
        f.n = (f.n + 7) & !7;
        f.append_to(out);
    }

    /// Decodes an `ofp_match` (consumes the padding too).
    pub fn decode(r: &mut Reader<'_>) -> Result<Match, DecodeError> {
        let mtype = r.u16()?;
        let len = r.u16()? as usize;
        if mtype != 1 {
            return Err(DecodeError::Unknown {
                what: "match type",
                value: mtype as u64,
            });
        }
        if len < 4 {
            return Err(DecodeError::BadLength {
                what: "ofp_match",
                len,
            });
        }
        let body = r.take_named(len - 4, "ofp_match")?;
        let padded = (len + 7) & !7;
        r.take_named(padded - len, "ofp_match padding")?;
        Match::decode_oxms(body)
    }

    /// Decodes a sequence of OXM entries.
    pub fn decode_oxms(body: &[u8]) -> Result<Match, DecodeError> {
        let mut m = Match::new();
        let mut r = Reader::new(body);
        while !r.is_empty() {
            let (field, h) = read_field_header(&mut r)?;
            let vlen = h.value_len();
            if h.masked && h.len % 2 != 0 {
                return Err(DecodeError::BadLength {
                    what: "masked OXM",
                    len: h.len as usize,
                });
            }
            let expected = field.info().len;
            let ok = match field {
                Field::TunMetadata(_) => (1..=MAX_TUN_METADATA_LEN).contains(&vlen),
                _ => vlen == expected,
            };
            if !ok {
                return Err(DecodeError::BadLength {
                    what: "OXM value",
                    len: vlen as usize,
                });
            }
            let value = get_value(r.take_named(vlen as usize, "OXM value")?);
            let mask = if h.masked {
                Some(get_value(r.take_named(vlen as usize, "OXM mask")?))
            } else {
                None
            };
            if m.get(field).is_some() {
                return Err(DecodeError::Invalid {
                    what: "match",
                    detail: "duplicate field",
                });
            }
            if let Some(mf) = MatchField::new(field, vlen, value, mask) {
                m.insert(mf);
            }
        }
        Ok(m)
    }
}

pub fn mac_to_u128(mac: [u8; 6]) -> u128 {
    let mut b = [0u8; 16];
    b[10..].copy_from_slice(&mac);
    u128::from_be_bytes(b)
}

pub fn u128_to_mac(v: u128) -> [u8; 6] {
    let b = v.to_be_bytes();
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[10..]);
    m
}

pub fn prefix_mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32) as u32)
    }
}
