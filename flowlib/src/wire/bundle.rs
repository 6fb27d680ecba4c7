//! ONF bundle control and bundle add messages (OpenFlow 1.3 experimenter 0x4f4e4600, 2300/2301).
