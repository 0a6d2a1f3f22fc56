
{{MASK_STRUCT}}
    /// Segments `image`: one logit per pixel -> {{ACTIVATION}} -> lesion where above `EdgeDermSpec.threshold`.
    /// Vision fits the photo with `cropAndScale`: draw `mask.overlay()` over the same region.
    func segment(_ image: CGImage, orientation: CGImagePropertyOrientation = .up) throws -> Mask {
        let observations = try perform(image, orientation: orientation) as? [VNCoreMLFeatureValueObservation]
        guard let array = observations?.first?.featureValue.multiArrayValue else {  // the model's one output
            throw EdgeDermModelError.unexpectedOutput("expected the \(EdgeDermSpec.outputName) multi-array")
        }
        let logits = MLShapedArray<Float>(converting: array).scalars  // [1, 1, H, W], row-major
        let probability = logits.map { 1 / (1 + exp(-$0)) }
        return Mask(width: EdgeDermSpec.inputWidth, height: EdgeDermSpec.inputHeight, probability: probability)
    }
