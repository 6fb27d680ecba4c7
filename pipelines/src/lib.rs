//! The kovs flow compiler: cluster model in, OpenFlow flows out. Pure: no I/O.
