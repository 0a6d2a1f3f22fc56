
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

    /// The manifest's operating points applied as written to `classify`'s output: name -> fired.
    /// The Core ML classifier's probabilities are softmax(logits); EdgeDermSpec.temperature rescales them
    /// to softmax(logits / temperature) first (p^(1/T), renormalised), as every EdgeDerm runtime does.
    func decide(_ ranked: [(label: String, probability: Float)]) -> [String: Bool] {
        let t = EdgeDermSpec.temperature
        let scaled = ranked.map { (label: $0.label, weight: powf(max($0.probability, 1e-30), 1 / t)) }
        let total = scaled.reduce(Float(0)) { $0 + $1.weight }
        var p: [String: Float] = [:]
        for s in scaled { p[s.label] = s.weight / total }
        var out: [String: Bool] = [:]
        for op in EdgeDermSpec.operatingPoints { out[op.name] = (p[op.label] ?? 0) >= op.threshold }
        return out
    }
