"""lorenmt/mtan's NYUv2 experiments (13 classes, 288x384), one file per SegNet model."""
