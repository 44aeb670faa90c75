//! Prints COCO detection metrics as JSON. Either `eval_det coco GT.json
//! RESULTS.json` or `eval_det mot GT.txt PRED.txt [SEQ_LENGTH]`. Used by
//! `bench/eval/parity.py`.

use std::path::Path;

use peregrine_eval::{read_coco_dets, read_coco_gt, CocoData, FileRole, MotFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = match (args.first().map(String::as_str), args.len()) {
        (Some("coco"), 3) => {
            let mut d = read_coco_gt(Path::new(&args[1]))?;
            read_coco_dets(Path::new(&args[2]), &mut d)?;
            d
        }
        (Some("mot"), 3 | 4) => {
            let gt = MotFile::read(Path::new(&args[1]), FileRole::GroundTruth)?;
            let pred = MotFile::read(Path::new(&args[2]), FileRole::Prediction)?;
            let len = args.get(3).map(|s| s.parse()).transpose()?;
            let mut d = CocoData::default();
            d.add_mot(&gt, &pred, None, len, 0)?;
            d
        }
        _ => return Err(
            "usage: eval_det coco GT.json RESULTS.json | eval_det mot GT.txt PRED.txt [SEQ_LENGTH]"
                .into(),
        ),
    };
    println!("{}", serde_json::to_string(&data.evaluate())?);
    Ok(())
}
