
    /// Every class with its probability (the model's own {{ACTIVATION}}), most probable first.
    func classify(_ image: CGImage, orientation: CGImagePropertyOrientation = .up) throws -> [(label: String, probability: Float)] {
        guard let observations = try perform(image, orientation: orientation) as? [VNClassificationObservation] else {
            throw EdgeDermModelError.unexpectedOutput("expected VNClassificationObservation from a Core ML classifier")
        }
        let known = Set(EdgeDermSpec.labels)
        if Set(observations.map(\.identifier)) != known {
            throw EdgeDermModelError.unexpectedOutput("model labels differ from EdgeDermSpec.labels: model and code are from different exports")
        }
        return observations.map { (label: $0.identifier, probability: $0.confidence) }
    }
