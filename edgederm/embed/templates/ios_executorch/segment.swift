
{{MASK_STRUCT}}
    /// Segments `image`: one logit per pixel -> {{ACTIVATION}} -> lesion where above `EdgeDermSpec.threshold`.
    /// The mask covers the fitted picture: draw `mask.overlay()` scaled over `fit` of the same photo.
    func segment(_ image: CGImage) throws -> Mask {
        let logits = try run(image)  // [1, 1, H, W], row-major
        let probability = logits.map { 1 / (1 + exp(-$0)) }
        return Mask(width: EdgeDermSpec.inputWidth, height: EdgeDermSpec.inputHeight, probability: probability)
    }
