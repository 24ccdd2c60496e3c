//! The Azure provider through the binary, against the in-repo fake of Graph and ARM.
