"""What a network is: the convolution factory, the shortcut registry and the papers' shortcuts, the residual unit and the network builder."""
