//! The Google Cloud provider through the binary, against the in-repo fake of IAM and Resource Manager.
