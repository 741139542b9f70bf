"""Fixed reference lists the simulator draws from: departments, diagnoses, ordinary catalogue entries, names.

Codes follow the national formats: ICD-10 医保版 diagnoses, 15-digit service-item codes (国标项目编码),
23-character drug codes (国家医保药品编码) and 20-character consumable codes. Restricted items come from
the real 两库 rule pack (see ``catalogue.py``); the ordinary ones below fill the rest of the catalogue.
"""

from __future__ import annotations

__all__ = ["DEPTS", "DIAGS", "ORDINARY_ITEMS", "SURNAMES", "GIVEN_CHARS", "OTHER_REGIONS", "LOOKALIKE_DIAGS"]

# (dept code, name, role). Roles: the focus areas of the policies are their own departments.
DEPTS = [
    ("A02", "全科医疗科", "general"),
    ("A03", "内科", "internal"),
    ("A03.04", "心血管内科", "cardiology"),
    ("A03.05", "肾病学专业(血液透析)", "dialysis"),
    ("A04", "外科", "surgery"),
    ("A04.03", "骨科", "orthopaedics"),
    ("A05", "妇产科", "gynaecology"),
    ("A07", "儿科", "paediatrics"),
    ("A15", "精神科", "psychiatry"),
    ("A19", "肿瘤科(肺部肿瘤)", "lung_cancer"),
    ("A21", "康复医学科", "rehabilitation"),
    ("A26", "麻醉科", "anaesthesia"),
    ("A28", "重症医学科", "icu"),
    ("A30", "医学影像科", "imaging"),
    ("A32", "医学检验科", "lab"),
    ("P01", "药房", "pharmacy"),
]

# (ICD-10, name, dept role, kind, sex) kind: acute / chronic / admit / injury / dialysis / psych / rehab.
DIAGS = [
    ("J06.900", "急性上呼吸道感染", "internal", "acute", 0),
    ("J20.900", "急性支气管炎", "internal", "acute", 0),
    ("K29.700", "胃炎", "internal", "acute", 0),
    ("M54.500", "腰痛", "orthopaedics", "acute", 0),
    ("R51.x00", "头痛", "internal", "acute", 0),
    ("J03.900", "急性扁桃体炎", "paediatrics", "acute", 0),
    ("N39.000", "泌尿道感染", "internal", "acute", 0),
    ("I10.x00", "原发性高血压", "cardiology", "chronic", 0),
    ("E11.900", "2型糖尿病", "internal", "chronic", 0),
    ("I25.100", "冠状动脉粥样硬化性心脏病", "cardiology", "chronic", 0),
    ("J44.900", "慢性阻塞性肺病", "internal", "chronic", 0),
    ("J18.900", "肺炎", "internal", "admit", 0),
    ("I63.900", "脑梗死", "internal", "admit", 0),
    ("I50.900", "心力衰竭", "cardiology", "admit", 0),
    ("K80.200", "胆囊结石", "surgery", "admit", 0),
    ("K35.800", "急性阑尾炎", "surgery", "admit", 0),
    ("M17.900", "膝关节病", "orthopaedics", "admit", 0),
    ("C34.900", "肺恶性肿瘤", "lung_cancer", "admit", 0),
    ("N40.x00", "前列腺增生", "surgery", "admit", 1),
    ("N81.200", "子宫脱垂", "gynaecology", "admit", 2),
    ("S72.000", "股骨颈骨折", "orthopaedics", "injury", 0),
    ("S82.200", "胫骨干骨折", "orthopaedics", "injury", 0),
    ("S06.000", "脑震荡", "surgery", "injury", 0),
    ("N18.500", "慢性肾脏病5期", "dialysis", "dialysis", 0),
    ("F20.900", "精神分裂症", "psychiatry", "psych", 0),
    ("I69.300", "脑梗死后遗症", "rehabilitation", "rehab", 0),
]
# External causes (外因): a fall at home is the fund's to pay; traffic and work injuries are not. In ICD-10
# W00-Y34 the first character after the dot is the place of occurrence (0 home, 3 sports area, 4 street,
# 6 industrial and construction area, ...; x where it is not coded); V01-V89 with .1/.4/.5... are traffic.
CAUSE_FALL = ("W01.x00", "同一平面上滑倒、绊倒和摔倒")
CAUSE_THIRD_PARTY = [("V43.500", "小汽车驾驶员在交通事故中受伤"), ("W20.600", "在工业和建筑区域被投掷、抛出或坠落物体击中"),
                     ("V23.400", "摩托车驾驶员在交通事故中受伤"), ("V03.100", "行人在交通事故中被小汽车撞伤"),
                     ("W12.600", "在建筑区域从脚手架上跌落"), ("W31.600", "在工业区域接触其他机械")]

# Honest look-alikes (lookalikes.py). Planned care coded as the purpose of the admission, the disease as a
# secondary diagnosis (医保结算清单: 以化疗、放疗为目的的住院主诊断选 Z51).
PLANNED_CARE = [("Z51.100", "恶性肿瘤化学治疗疗程"), ("Z51.000", "恶性肿瘤放射治疗疗程"),
                ("Z47.800", "其他特指的矫形外科随诊医疗")]
# Injuries at home and at play with their usual external causes (place 0 home, 3 sports area, x not coded).
CAUSE_HOME_PLAY = [("W01.000", "在家中同一平面上滑倒、绊倒和摔倒"), ("W10.000", "在家中楼梯上跌倒"),
                   ("W19.x00", "跌倒"), ("W20.000", "在家中被坠落物体击中"), ("W20.x00", "被投掷、抛出或坠落物体击中"),
                   ("W21.300", "在体育场所被运动器材击中"), ("W22.000", "在家中碰撞其他物体"),
                   ("W03.300", "在体育场所与他人相撞跌倒"), ("W23.000", "在家中被门窗夹伤"),
                   ("W25.000", "在家中被锐利玻璃割伤"), ("W26.000", "在家中被刀具割伤"), ("W26.x00", "被刀、剑或匕首割伤")]
# (injury, name, its usual causes among CAUSE_FALL and CAUSE_HOME_PLAY)
MINOR_INJURIES = [("S61.000", "手指开放性伤口", ("W25.000", "W26.000", "W26.x00", "W23.000")),
                  ("S93.400", "踝关节扭伤", ("W01.000", "W03.300", "W21.300", "W10.000", "W01.x00")),
                  ("S52.500", "桡骨下端骨折", ("W01.000", "W10.000", "W19.x00", "W03.300")),
                  ("S00.900", "头部浅表损伤", ("W20.000", "W20.x00", "W22.000", "W21.300"))]
# The usual causes of the injuries of DIAGS when they happen at home or at play (honest: the fund pays).
HONEST_CAUSES = {"S72.000": ("W01.x00", "W01.000", "W10.000", "W19.x00"),
                 "S82.200": ("W01.000", "W10.000", "W03.300", "W21.300", "W20.x00"),
                 "S06.000": ("W20.000", "W20.x00", "W22.000", "W01.000", "W19.x00")}
# A work injury whose place is not coded, marked by the work-related supplementary code Y96 instead.
CAUSE_WORK_UNPLACED = [("W20.x00", "被投掷、抛出或坠落物体击中"), ("W23.x00", "在物体之间被夹住、压碎或挤压"),
                       ("W31.x00", "接触其他和未特指的机械")]
WORK_RELATED = ("Y96.x00", "与工作有关的情况")

# Ordinary (unrestricted) catalogue entries:
# (role, name, list_type, med_chrgitm_type, chrgitm_lv, price, vbp_group, vbp_flag, days_per_unit)
# vbp_group '' = not a 集采 product group; vbp_flag '1' = the selected (中选) product of its group.
ORDINARY_ITEMS = [
    # services
    ("consult_op", "普通门诊诊查费", "201", "02", "01", 10.0, "", "", 0),
    ("consult_ip", "住院诊查费", "201", "02", "01", 15.0, "", "", 0),
    ("consult_er", "急诊诊查费", "201", "02", "01", 18.0, "", "", 0),
    ("obs_consult", "门急诊留观诊查费", "201", "02", "01", 12.0, "", "", 0),
    ("bed", "普通病房床位费", "201", "01", "01", 45.0, "", "", 0),
    ("nursing", "Ⅱ级护理", "201", "07", "01", 20.0, "", "", 0),
    ("nursing_icu", "重症监护", "201", "07", "01", 180.0, "", "", 0),
    ("er_monitor", "急诊监护费", "201", "05", "01", 60.0, "", "", 0),
    ("exam", "X线摄影", "201", "03", "01", 60.0, "", "", 0),
    ("exam", "计算机断层扫描(CT)平扫", "201", "03", "01", 240.0, "", "", 0),
    ("exam", "磁共振成像(MRI)平扫", "201", "03", "02", 560.0, "", "", 0),
    ("exam", "彩色多普勒超声常规检查", "201", "03", "01", 150.0, "", "", 0),
    ("exam", "常规心电图检查", "201", "03", "01", 25.0, "", "", 0),
    ("exam", "动态心电图", "201", "03", "02", 180.0, "", "", 0),
    ("exam", "胃镜检查", "201", "03", "02", 260.0, "", "", 0),
    ("lab", "血细胞分析(血常规)", "201", "04", "01", 20.0, "", "", 0),
    ("lab", "尿常规", "201", "04", "01", 10.0, "", "", 0),
    ("lab", "肝功能检查", "201", "04", "01", 60.0, "", "", 0),
    ("lab", "肾功能检查", "201", "04", "01", 40.0, "", "", 0),
    ("lab", "血脂测定", "201", "04", "01", 45.0, "", "", 0),
    ("lab", "C反应蛋白测定", "201", "04", "01", 30.0, "", "", 0),
    ("lab", "电解质测定", "201", "04", "01", 35.0, "", "", 0),
    ("lab_glucose", "葡萄糖测定", "201", "04", "01", 8.0, "", "", 0),
    ("lab_hba1c", "糖化血红蛋白测定", "201", "04", "01", 60.0, "", "", 0),
    ("treat", "静脉输液", "201", "05", "01", 12.0, "", "", 0),
    ("treat", "肌肉注射", "201", "05", "01", 5.0, "", "", 0),
    ("rehab", "运动疗法", "201", "05", "02", 55.0, "", "", 0),
    ("rehab", "作业疗法", "201", "05", "02", 40.0, "", "", 0),
    ("rehab", "针刺", "201", "05", "01", 30.0, "", "", 0),
    ("rehab", "中频脉冲电治疗", "201", "05", "01", 25.0, "", "", 0),
    ("rehab", "手功能评定", "201", "05", "02", 40.0, "", "", 0),
    ("dialysis", "血液透析", "201", "05", "01", 420.0, "", "", 0),
    ("dialysis", "血液透析滤过", "201", "05", "02", 600.0, "", "", 0),
    ("psych", "精神科监护", "201", "05", "01", 30.0, "", "", 0),
    ("psych", "心理治疗", "201", "05", "02", 80.0, "", "", 0),
    ("psych", "抗精神病药物治疗监测", "201", "04", "01", 50.0, "", "", 0),
    ("anaesthesia", "全身麻醉", "201", "1413", "01", 800.0, "", "", 0),
    ("anaesthesia", "椎管内麻醉", "201", "1413", "01", 500.0, "", "", 0),
    # consumables
    ("consumable", "一次性输液器", "301", "08", "01", 3.5, "", "", 0),
    ("consumable", "一次性使用注射器", "301", "08", "01", 0.8, "", "", 0),
    ("consumable", "医用缝合线", "301", "08", "02", 45.0, "", "", 0),
    ("consumable", "一次性使用透析器", "301", "08", "02", 130.0, "", "", 0),
    ("consumable", "人工膝关节假体", "301", "08", "02", 7800.0, "", "", 0),
    ("consumable", "骨科内固定钢板", "301", "08", "02", 3200.0, "", "", 0),
    # drugs: chronic (with 集采 groups: a cheap selected product and dearer non-selected ones)
    ("drug_chronic", "苯磺酸氨氯地平片(中选)", "101", "09", "01", 0.9, "G01", "1", 7),
    ("drug_chronic", "苯磺酸氨氯地平片", "101", "09", "01", 28.0, "G01", "0", 7),
    ("drug_chronic", "盐酸二甲双胍片(中选)", "101", "09", "01", 2.5, "G02", "1", 10),
    ("drug_chronic", "盐酸二甲双胍缓释片", "101", "09", "01", 32.0, "G02", "0", 10),
    ("drug_chronic", "阿托伐他汀钙片(中选)", "101", "09", "01", 3.1, "G03", "1", 7),
    ("drug_chronic", "阿托伐他汀钙片", "101", "09", "02", 48.0, "G03", "0", 7),
    ("drug_chronic", "氯吡格雷片(中选)", "101", "09", "01", 4.0, "G04", "1", 7),
    ("drug_chronic", "硫酸氢氯吡格雷片", "101", "09", "02", 95.0, "G04", "0", 7),
    ("drug_chronic", "缬沙坦胶囊", "101", "09", "02", 26.0, "", "", 7),
    ("drug_chronic", "甘精胰岛素注射液", "101", "09", "02", 150.0, "", "", 30),
    ("drug_chronic", "噻托溴铵粉吸入剂", "101", "09", "02", 180.0, "", "", 30),
    ("drug_psych", "利培酮片", "101", "09", "01", 25.0, "", "", 10),
    ("drug_psych", "奥氮平片", "101", "09", "02", 120.0, "", "", 14),
    ("drug_dialysis", "重组人促红素注射液", "101", "09", "02", 85.0, "", "", 3),
    ("drug_cancer", "吉非替尼片", "101", "09", "02", 540.0, "", "", 10),
    # drugs: acute / OTC
    ("drug_acute", "阿莫西林胶囊(中选)", "101", "09", "01", 1.8, "G05", "1", 4),
    ("drug_acute", "阿莫西林胶囊", "101", "09", "01", 16.0, "G05", "0", 4),
    ("drug_acute", "头孢克肟分散片", "101", "09", "02", 35.0, "", "", 3),
    ("drug_acute", "布洛芬缓释胶囊", "101", "09", "01", 12.0, "", "", 5),
    ("drug_acute", "奥美拉唑肠溶胶囊(中选)", "101", "09", "01", 1.5, "G06", "1", 7),
    ("drug_acute", "奥美拉唑肠溶胶囊", "101", "09", "01", 22.0, "G06", "0", 7),
    ("drug_acute", "连花清瘟胶囊", "101", "11", "02", 26.0, "", "", 3),
    ("drug_acute", "复方甘草片", "101", "09", "01", 6.0, "", "", 5),
    ("drug_otc", "维生素C片", "101", "09", "03", 8.0, "", "", 30),
    ("drug_otc", "感冒灵颗粒", "101", "11", "02", 14.0, "", "", 3),
    ("drug_otc", "板蓝根颗粒", "101", "11", "01", 10.0, "", "", 5),
    # inpatient drugs
    ("drug_ip", "0.9%氯化钠注射液", "101", "09", "01", 3.5, "", "", 1),
    ("drug_ip", "5%葡萄糖注射液", "101", "09", "01", 3.8, "", "", 1),
    ("drug_ip", "注射用头孢曲松钠(中选)", "101", "09", "01", 2.2, "G07", "1", 1),
    ("drug_ip", "注射用头孢曲松钠", "101", "09", "01", 38.0, "G07", "0", 1),
    ("drug_ip", "注射用泮托拉唑钠", "101", "09", "02", 28.0, "", "", 1),
    ("drug_ip", "低分子肝素钙注射液", "101", "09", "02", 32.0, "", "", 1),
    # herbal pieces (中药饮片), priced per gram
    ("herb", "中药饮片(黄芪)", "102", "10", "02", 0.12, "", "", 0),
    ("herb", "中药饮片(当归)", "102", "10", "02", 0.25, "", "", 0),
]

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
GIVEN_CHARS = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红建国文辉鹏飞宇浩然欣怡子涵梓轩晨雨思")

# Insured elsewhere (异地参保): province capitals' 医保区划.
OTHER_REGIONS = ["110105", "310104", "440106", "210102", "230102", "370102"]

# Every code the look-alikes add to the diagnoses (care.DIAG_CODE appends them), each once.
LOOKALIKE_DIAGS = list(dict.fromkeys(
    PLANNED_CARE + [(c, n) for c, n, _ in MINOR_INJURIES] + CAUSE_HOME_PLAY
    + [c for c in CAUSE_WORK_UNPLACED if c not in CAUSE_HOME_PLAY] + [WORK_RELATED]))
