"""tinyldm_ros training: render data, train the tiny VAE and denoiser, evaluate, export to ONNX."""
