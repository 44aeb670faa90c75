use std::path::Path;

use crate::ClassId;

/// The 80 COCO class names in the index order used by COCO-trained detectors.
pub const COCO_NAMES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabelsError {
    #[error("{path}: cannot read labels file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: labels file has no names")]
    Empty { path: String },
    #[error("unknown class {name:?} (known: {known})")]
    UnknownClass { name: String, known: String },
}

/// Class names of a model, by class index.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    names: Vec<String>,
}

impl Default for Labels {
    fn default() -> Self {
        Self::coco()
    }
}

impl Labels {
    pub fn coco() -> Self {
        Self {
            names: COCO_NAMES.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn from_names(names: Vec<String>) -> Self {
        Self { names }
    }

    /// Reads one name per line; blank lines are ignored.
    pub fn from_file(path: &Path) -> Result<Self, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).ok_or_else(|| LabelsError::Empty {
            path: path.display().to_string(),
        })
    }

    /// Names file contents: one name per line, blank lines ignored; `None`
    /// when it holds no name.
    pub fn parse(text: &str) -> Option<Self> {
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        (!names.is_empty()).then_some(Self { names })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All names, by class index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The name of a class, if the list has one.
    pub fn get(&self, id: ClassId) -> Option<&str> {
        self.names.get(id as usize).map(String::as_str)
    }

    /// The name of a class, or `class<N>` when the model has more classes
    /// than the label list.
    pub fn name(&self, id: ClassId) -> String {
        self.names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| format!("class{id}"))
    }

    /// Finds a class by name (case-insensitive) or by numeric index.
    pub fn id_of(&self, name: &str) -> Result<ClassId, LabelsError> {
        let wanted = name.trim();
        if let Some(i) = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(wanted))
        {
            return Ok(i as ClassId);
        }
        if let Ok(i) = wanted.parse::<ClassId>() {
            return Ok(i);
        }
        Err(LabelsError::UnknownClass {
            name: wanted.to_string(),
            known: if self.names.len() > 12 {
                format!("{}, ...", self.names[..12].join(", "))
            } else {
                self.names.join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coco_lookup_by_name_and_index() {
        let l = Labels::coco();
        assert_eq!(l.len(), 80);
        assert_eq!(l.id_of("Car").unwrap(), 2);
        assert_eq!(l.id_of("traffic light").unwrap(), 9);
        assert_eq!(l.id_of("7").unwrap(), 7);
        assert_eq!(l.name(0), "person");
        assert_eq!(l.name(200), "class200");
        assert!(l.id_of("unicorn").is_err());
    }
}
