"""Motion capture import, kinematics and the Motion VAE frame representation.

This package owns everything that turns motion files (BVH, DeepMimic, original
MVAE ``mocap.npz``) into training data and back: rotation math, forward
kinematics, the pose layout, mirroring, foot contacts and BVH export.
"""
